// latchgate.toml and the agent profiles come from files a box may have
// written: random TOML documents and values at every declared key must give
// either a typed result or a LaunchError that names the file, the section and
// the key; a value of the wrong type is never accepted. The oracle (what each
// type accepts) is written here apart from config/toml-schema.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'smol-toml';
import { LATCHGATE_TOML, parseConfig } from '../../dist/config/latchgate-toml.js';
import { parseProfile, PROFILE_TOML } from '../../dist/config/profiles.js';
import { checkSchema, leaves, nodeAt, readToml } from '../../dist/config/toml-schema.js';
import { LaunchError } from '../../dist/core/errors.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const FILE = '/home/me/proj/.latchgate/latchgate.toml';
const PROFILE = '/p/x.toml';

/** TOML value texts of every kind TOML has, valid and not for each declared type. */
const VALUES = [
  '"a"', '""', "'lit'", '"a\\nb"', '"""two\nlines"""', '"/abs/path"', '"rel/path"', '"env:A"', '"{}"', '"\\u0000"', '"é"',
  '0', '1', '-1', '7', '443', '65535', '65536', '+8', '0x10', '0o7', '0b1', '1_000', '9007199254740991', '-9007199254740991',
  '1.0', '1.5', '-0.0', '1e3', 'inf', '-inf', 'nan',
  'true', 'false',
  '1979-05-27', '07:32:00', '1979-05-27T07:32:00Z', '1979-05-27T07:32:00',
  '[]', '["a"]', '["a", "b"]', '[1]', '[443, 8443]', '[0]', '[70000]', '[1.5]', '["a", 1]', '[[1]]', '[{a = 1}]', '[true]', '[1979-05-27]',
  '{}', '{ A = "x" }', '{ A_1 = "x", b = "y" }', '{ a = 1 }', '{ "bad-name" = "x" }', '{ "1A" = "x" }', '{ a = { b = "c" } }',
];

const isTable = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);
const isInt = (v) => typeof v === 'number' && Number.isInteger(v);
/** What each declared type accepts, as docs/CONFIG.md says it. */
const ACCEPTS = {
  string: (v) => typeof v === 'string',
  'string[]': (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
  int: (v) => isInt(v) && v >= 1,
  uint: (v) => isInt(v) && v >= 0,
  'int[]': (v) => Array.isArray(v) && v.every((x) => isInt(x) && x >= 1 && x <= 65535),
  bool: (v) => v === true || v === false,
  env: (v) => isTable(v) && Object.entries(v).every(([k, x]) => /^[A-Za-z_]\w*$/.test(k) && typeof x === 'string'),
};

const bare = (k) => /^[A-Za-z0-9_-]+$/.test(k);
const tomlKey = (k) => (bare(k) ? k : JSON.stringify(k));
const sectionOf = (path) => path.map(tomlKey).join('.');
const camel = (k) => k.replace(/_(.)/g, (_, c) => c.toUpperCase());

/** A name for a '*' in a path: a uid (or not) under principals, else anything TOML allows. */
function nameFor(r, path, i) {
  if (path[i - 1] === 'principals') return r.pick(['1000', '0', '65534', '4294967295', 'alice', '-1', '1.5', '']);
  return r.pick(['x', 'api', 'a b', 'k\n', '1000', 'é', '', 'Upper', '__proto__', 'constructor']);
}

/** A valid value of each type, for the required keys beside the one under test. */
const VALID = { string: '"s"', 'string[]': '["a"]', int: '1', uint: '0', 'int[]': '[443]', bool: 'true', env: '{}' };

/** One key of the declaration set to a random value: the document text and where the value went. */
function assignment(r, decl) {
  const l = r.pick(leaves(decl));
  const path = l.path.map((k, i) => (k === '*' ? nameFor(r, l.path, i) : k));
  const section = path.slice(0, -1);
  const key = path.at(-1);
  const text = r.pick(VALUES);
  let doc = `${section.length ? `[${sectionOf(section)}]\n` : ''}${tomlKey(key)} = ${text}\n`;
  // The keys its table requires: mostly there (valid), sometimes missing.
  const parent = nodeAt(decl, l.path.slice(0, -1));
  const missing = [];
  for (const [k, n] of Object.entries(parent.kind === 'table' ? parent.fields : {})) {
    if (k === key || n.kind !== 'leaf' || !n.options.required) continue;
    if (r.chance(0.8)) doc += `${k} = ${VALID[n.type]}\n`;
    else missing.push(k);
  }
  return { leaf: l, path, section, key, doc, value: parse(`v = ${text}`).v, missing };
}

/** What a value of the right type must give: null (read as written), or the start of the refusal. */
function refusalOf(decl, a, file) {
  const star = a.leaf.path.indexOf('*');
  if (star >= 0) {
    const { pattern, problem } = nodeAt(decl, a.leaf.path.slice(0, star)).key;
    if (pattern && !pattern.test(a.path[star])) return `${file}: [${sectionOf(a.path.slice(0, star + 1))}]: ${problem}`;
  }
  if (a.missing.length) return `${file}: ${a.section.length ? `[${sectionOf(a.section)}] ` : ''}key ${JSON.stringify(a.missing[0])}: required`;
  return null;
}

/** The value read at a declared path (camelCase keys, Maps for named tables). */
function readAt(read, decl, path) {
  let v = read;
  let node = decl;
  for (const k of path) {
    if (node.kind === 'named') {
      v = v.get(node.numeric ? Number(k) : k);
      node = node.entry;
    } else {
      v = v[camel(k)];
      node = node.fields[k];
    }
  }
  return v;
}

function expectedRead(l, value, file) {
  if (!l.options.fileRelative) return value;
  const rel = (p) => (isAbsolute(p) ? p : resolve(dirname(file), p));
  return Array.isArray(value) ? value.map(rel) : rel(value);
}

/** Runs fn; returns the LaunchError, or a failure line when it threw something else. */
function attempt(fn) {
  try {
    return { result: fn() };
  } catch (e) {
    return e instanceof LaunchError ? { error: e } : { crash: `${e?.name}: ${e?.message}` };
  }
}

function valueProperty(decl, file, run, seed, n) {
  const r = prng(seed);
  const failures = [];
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const a = assignment(r, decl);
    const fits = ACCEPTS[a.leaf.type](a.value);
    const at = a.section.length ? `${file}: [${sectionOf(a.section)}] key ${JSON.stringify(a.key)}` : `${file}: key ${JSON.stringify(a.key)}`;
    const { result, error, crash } = attempt(() => run(a.doc));
    const show = `${JSON.stringify(a.doc)} (${a.leaf.type})`;
    if (crash) failures.push(`${show}: crashed: ${crash}`);
    else if (!fits) {
      refused++;
      if (!error) failures.push(`${show}: a wrong type was accepted`);
      else if (!error.message.startsWith(`${at}: expected `)) failures.push(`${show}: ${JSON.stringify(error.message)} does not start with ${JSON.stringify(`${at}: expected`)}`);
      else if (error.message.includes('\n')) failures.push(`${show}: the message is not one line`);
    } else if (refusalOf(decl, a, file) !== null) {
      const want = refusalOf(decl, a, file);
      if (!error?.message.startsWith(want)) failures.push(`${show}: ${error?.message ?? 'accepted'}; expected ${want}`);
    } else if (error) failures.push(`${show}: refused a value of the right type: ${error.message}`);
    else if (result !== undefined) {
      accepted++;
      const got = readAt(result, decl, a.path);
      try {
        assert.deepStrictEqual(got, expectedRead(a.leaf, a.value, file));
      } catch {
        failures.push(`${show}: read as ${JSON.stringify(got)}`);
      }
    }
  }
  return { failures, accepted, refused };
}

test('property: a random value at any key of latchgate.toml is read as written or refused naming the section, key and expected type (seed 0xc0f1)', () => {
  const run = (text) => {
    parseConfig(FILE, text);
    return readToml(FILE, parse(text), LATCHGATE_TOML);
  };
  const { failures, accepted, refused } = valueProperty(LATCHGATE_TOML, FILE, run, 0xc0f1, 4000);
  assert.ok(accepted > 300 && refused > 2000, `both outcomes should be common (accepted ${accepted}, refused ${refused})`);
  assert.deepEqual(failures.slice(0, 8), [], `${failures.length} failures`);
});

test('property: the same for a profile\'s keys, through the same declaration mechanism (seed 0x9f11e)', () => {
  const run = (text) => {
    const doc = parse(text);
    checkSchema(PROFILE, doc, PROFILE_TOML);
    return readToml(PROFILE, doc, PROFILE_TOML);
  };
  const { failures, accepted, refused } = valueProperty(PROFILE_TOML, PROFILE, run, 0x9f11e, 3000);
  assert.ok(accepted > 100 && refused > 1000, `both outcomes should be common (accepted ${accepted}, refused ${refused})`);
  assert.deepEqual(failures.slice(0, 8), [], `${failures.length} failures`);
});

test('property: an unknown key anywhere is refused naming its section, with the nearest valid name or the list (seed 0x0dd)', () => {
  const r = prng(0x0dd);
  const failures = [];
  for (const [decl, file, run] of [[LATCHGATE_TOML, FILE, (t) => parseConfig(FILE, t)], [PROFILE_TOML, PROFILE, (t) => parseProfile('x', PROFILE, `command = ["x"]\n${t}`)]]) {
    for (let i = 0; i < 600; i++) {
      const l = r.pick(leaves(decl));
      const path = l.path.map((k, j) => (k === '*' ? (l.path[j - 1] === 'principals' ? '1000' : 'n') : k));
      // A leaf directly under a named table has no fixed keys: every name is one.
      if (l.path.at(-1) === '*') continue;
      const section = path.slice(0, -1);
      const known = Object.keys(nodeAt(decl, section).fields);
      const key = r.chance(0.5) ? path.at(-1).slice(0, -1) + r.pick(['', 'x', 's', '_']) : r.pick(['zzz', 'constructor', 'toString', '__proto__', 'key with space', 'ü']);
      if (known.includes(key)) continue;
      const text = `${section.length ? `[${sectionOf(section)}]\n` : ''}${tomlKey(key)} = 1\n`;
      const { error, crash } = attempt(() => run(text));
      const at = `${file}: ${section.length ? `[${sectionOf(section)}] ` : ''}key ${JSON.stringify(key)}: unknown key; `;
      if (crash) failures.push(`${JSON.stringify(text)}: crashed: ${crash}`);
      else if (!error) failures.push(`${JSON.stringify(text)}: accepted`);
      else if (!error.message.startsWith(at)) failures.push(`${JSON.stringify(text)}: ${error.message}`);
      else {
        const hint = error.message.slice(at.length);
        const m = /^did you mean "(.*)"\?$/.exec(hint);
        if (m ? !known.includes(m[1]) : !hint.startsWith('expected one of: ')) failures.push(`${JSON.stringify(text)}: hint ${hint}`);
      }
    }
  }
  assert.deepEqual(failures.slice(0, 8), [], `${failures.length} failures`);
});

test('property: a value where a [section] belongs is refused naming the section (seed 0x7ab)', () => {
  const r = prng(0x7ab);
  const failures = [];
  const tables = ['sandbox', 'sandbox.agent', 'sandbox.agent.credentials', 'sandbox.agent.credentials.x', 'sandbox.limits', 'sandbox.network', 'sandbox.network.resolve', 'gate', 'state', 'identity', 'identity.principals', 'identity.principals.1000', 'operators', 'operators.bob', 'policy'];
  for (let i = 0; i < 500; i++) {
    const path = r.pick(tables).split('.');
    const text = r.pick(VALUES.filter((v) => !v.startsWith('{')));
    const doc = `${path.length > 1 ? `[${path.slice(0, -1).join('.')}]\n` : ''}${path.at(-1)} = ${text}\n`;
    const { error, crash } = attempt(() => parseConfig(FILE, doc));
    if (crash) failures.push(`${JSON.stringify(doc)}: crashed: ${crash}`);
    else if (!error?.message.startsWith(`${FILE}: [${path.join('.')}] must be a table`)) failures.push(`${JSON.stringify(doc)}: ${error?.message ?? 'accepted'}`);
  }
  assert.deepEqual(failures.slice(0, 8), [], `${failures.length} failures`);
});

/** A random document: random sections of the declaration, random keys (declared or not), random values. */
function randomDocument(r, decl) {
  const ls = leaves(decl).filter((l) => l.path[0] !== 'command');
  const top = [];
  const tables = new Map();
  for (let n = r.below(8); n > 0; n--) {
    const l = r.pick(ls);
    const path = l.path.map((k, i) => (k === '*' ? nameFor(r, l.path, i) : k));
    const section = sectionOf(path.slice(0, -1));
    const key = r.chance(0.9) ? path.at(-1) : r.pick(['zzz', 'ro_mount', 'nme']);
    const lines = section ? tables.get(section) ?? tables.set(section, []).get(section) : top;
    // A key set twice is a TOML error of its own: mostly avoided.
    if (lines.some((x) => x.startsWith(`${tomlKey(key)} =`)) && r.chance(0.9)) continue;
    lines.push(`${tomlKey(key)} = ${r.pick(VALUES)}`);
  }
  return [...top, ...[...tables].flatMap(([section, lines]) => [`[${section}]`, ...lines])].map((x) => `${x}\n`).join('');
}

/** Every value read has its declared type (undefined only where no default or requirement applies). */
function typed(read, decl, path = []) {
  const bad = [];
  for (const [k, node] of Object.entries(decl.fields)) {
    const v = read[camel(k)];
    const at = [...path, k].join('.');
    if (node.kind === 'table') bad.push(...typed(v, node, [...path, k]));
    else if (node.kind === 'named') {
      if (!(v instanceof Map)) bad.push(`${at}: not a Map`);
      else
        for (const [name, x] of v) {
          if (node.numeric !== (typeof name === 'number')) bad.push(`${at}: name ${name}`);
          if (node.entry.kind === 'table') bad.push(...typed(x, node.entry, [...path, k, String(name)]));
          else if (!ACCEPTS[node.entry.type](x)) bad.push(`${at}.${name}: ${JSON.stringify(x)}`);
        }
    } else if (v === undefined ? node.options.default !== undefined || node.options.required : !ACCEPTS[node.type](v)) bad.push(`${at}: ${JSON.stringify(v)}`);
  }
  return bad;
}

test('fuzz: 3000 random latchgate.toml documents: a fully typed result or a LaunchError starting with the file (seed 0xd0c)', () => {
  const r = prng(0xd0c);
  const failures = [];
  let ok = 0;
  for (let i = 0; i < 3000; i++) {
    const text = randomDocument(r, LATCHGATE_TOML);
    const { result, error, crash } = attempt(() => parseConfig(FILE, text));
    if (crash) failures.push(`${JSON.stringify(text)}: crashed: ${crash}`);
    else if (error) {
      if (!error.message.startsWith(`${FILE}:`) || error.message.includes('\n')) failures.push(`${JSON.stringify(text)}: ${JSON.stringify(error.message)}`);
    } else {
      ok++;
      const bad = typed(readToml(FILE, parse(text), LATCHGATE_TOML), LATCHGATE_TOML);
      if (bad.length) failures.push(`${JSON.stringify(text)}: mistyped ${bad.join(', ')}`);
      if (!(result.sandbox.credentials instanceof Map) || !Array.isArray(result.sandbox.allowHosts) || !(result.gate.principals instanceof Map)) failures.push(`${JSON.stringify(text)}: result shape`);
    }
  }
  assert.ok(ok > 200, `some documents should be valid (got ${ok})`);
  assert.deepEqual(failures.slice(0, 8), [], `${failures.length} failures`);
});

test('fuzz: 3000 random profiles: a fully typed profile or a LaunchError starting with the file (seed 0xa9e)', () => {
  const r = prng(0xa9e);
  const failures = [];
  let ok = 0;
  for (let i = 0; i < 3000; i++) {
    const text = `command = ["x"]\n${randomDocument(r, PROFILE_TOML)}`;
    const { error, crash } = attempt(() => parseProfile('x', PROFILE, text));
    if (crash) failures.push(`${JSON.stringify(text)}: crashed: ${crash}`);
    else if (error) {
      if (!error.message.startsWith(`${PROFILE}:`)) failures.push(`${JSON.stringify(text)}: ${JSON.stringify(error.message)}`);
    } else {
      ok++;
      const bad = typed(readToml(PROFILE, parse(text), PROFILE_TOML), PROFILE_TOML);
      if (bad.length) failures.push(`${JSON.stringify(text)}: mistyped ${bad.join(', ')}`);
    }
  }
  assert.ok(ok > 100, `some profiles should be valid (got ${ok})`);
  assert.deepEqual(failures.slice(0, 8), [], `${failures.length} failures`);
});
