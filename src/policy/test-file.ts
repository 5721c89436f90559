// Policy test files (`latchgate policy test`): YAML (or JSON, which YAML
// reads too) holding cases, each a decision input, the policy data, and the
// decision expected. The format:
//
//   input:            # optional: members every case's input starts from
//     principal: alice
//   data:             # optional: the policy data of cases without their own
//     acl: { alice: { allowed_actions: [http_fetch], allowed_sinks: [http_read] } }
//     allowlist: {}
//   cases:
//     - name: alice may fetch
//       input: { action_id: http_fetch, requested_sinks: [http_read] }
//       data: ...     # optional
//       expect: allow # allow | deny | pending_approval
//       expect_reason: allow-default   # optional: a deny's deny_reason or its rule id; a policy that allowed
//
// An input is DEFAULT_TEST_INPUT with the file's input members over it and
// the case's over those (member by member); it must then match
// policies/decision-input.schema.json. The data defaults to no grants at
// all. Every problem is reported with the file, the line, the case and the
// field; nothing here throws anything but PolicyTestFileError.
import { closeSync, fstatSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { nearest } from '../config/suggest.js';
import { inspectData, validateInput, type PolicyData } from './engine.js';
import type { Outcome } from './replay.js';
import type { PolicyInput } from './types.js';

/** The input members a case does not give (documented in docs/POLICY-REPLAY.md). */
export const DEFAULT_TEST_INPUT: Readonly<PolicyInput> = Object.freeze({
  principal: 'tester',
  session_id: 'test-session',
  scopes: ['tools:call'],
  required_scopes: [],
  action_id: 'test_action',
  action_version: '1.0.0',
  action_risk_level: 'low',
  action_trust_verdict: 'digest_ok',
  action_category: 'general',
  request_hash: `sha256:${'0'.repeat(64)}`,
  requested_sinks: [],
  requested_secrets: [],
  egress_profile: 'none',
  budgets_before: { calls_remaining: 100 },
  unresolved_domains: [],
  unresolved_paths: [],
} as PolicyInput);

/** Every member a decision input may have. */
const INPUT_MEMBERS = [...Object.keys(DEFAULT_TEST_INPUT), 'fs_path'];
const FILE_KEYS = ['description', 'input', 'data', 'cases'];
const CASE_KEYS = ['name', 'description', 'input', 'data', 'expect', 'expect_reason'];
const EXPECTS: readonly Outcome[] = ['allow', 'deny', 'pending_approval'];
/** Extensions read from a directory. */
const EXTENSIONS = ['.yaml', '.yml', '.json'];
export const MAX_TEST_FILE_BYTES = 4 * 1024 * 1024;

export interface PolicyTestCase {
  file: string;
  /** The line the case starts on. */
  line: number | undefined;
  name: string;
  input: PolicyInput;
  data: PolicyData;
  expect: Outcome;
  expect_reason?: string;
}

export class PolicyTestFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    /** Where in the file: cases[2] ("name").input.scopes, say. */
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${field ? `${field}: ` : ''}${problem}`);
    this.name = 'PolicyTestFileError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
const show = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 60)}`);
const EMPTY_DATA = (): PolicyData => ({ acl: {}, allowlist: {} });

/** Parses one test file's text; throws PolicyTestFileError naming what is wrong. */
export function parsePolicyTestFile(text: string, file: string): PolicyTestCase[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const first = doc.errors[0];
  if (first) {
    const line = first.pos?.[0] !== undefined ? lc.linePos(first.pos[0]).line : undefined;
    throw new PolicyTestFileError(file, line, '', `not valid YAML or JSON: ${first.message.split('\n')[0]}`);
  }
  // The line of a key (where the field is named) or of a list item; the nearest enclosing one when it is not there.
  const lineOf = (path: (string | number)[]): number | undefined => {
    const start = (n: unknown) => (n && typeof n === 'object' && Array.isArray((n as { range?: unknown }).range) ? ((n as { range: unknown[] }).range[0] as number) : undefined);
    let line: number | undefined;
    let node: unknown = doc.contents;
    for (const seg of path) {
      let at: number | undefined;
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
        at = start(pair?.key);
        node = pair?.value;
      } else if (isSeq(node)) {
        node = node.items[Number(seg)];
        at = start(node);
      } else {
        break;
      }
      if (at === undefined) break;
      line = lc.linePos(at).line;
    }
    return line ?? (start(doc.contents) !== undefined ? lc.linePos(start(doc.contents)!).line : undefined);
  };
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new PolicyTestFileError(file, undefined, '', `cannot be read: ${String((e as Error).message).split('\n')[0]}`);
  }
  const fail = (path: (string | number)[], field: string, problem: string): never => {
    throw new PolicyTestFileError(file, lineOf(path), field, problem);
  };
  if (!isObject(root)) fail([], '', `expected a mapping with cases (and optionally input, data), got ${show(root)}`);
  const top = root as Record<string, unknown>;
  unknownKeys(top, FILE_KEYS, (k, hint) => fail([k], k, `not a key of a policy test file${hint}`));
  if (top.description !== undefined && typeof top.description !== 'string') fail(['description'], 'description', `expected text, got ${show(top.description)}`);
  const base = top.input === undefined ? {} : members(top.input, (k, problem) => fail(k === undefined ? ['input'] : ['input', k], k === undefined ? 'input' : `input.${k}`, problem));
  const fileData = top.data === undefined ? undefined : checkedData(top.data, (problem) => fail(['data'], 'data', problem));
  if (!Array.isArray(top.cases) || top.cases.length === 0) fail(['cases'], 'cases', `expected a list of one case or more, got ${show(top.cases)}`);
  const names = new Map<string, number>();
  return (top.cases as unknown[]).map((c, i) => {
    const at = (name: string | undefined) => `cases[${i}]${name !== undefined ? ` (${JSON.stringify(name)})` : ''}`;
    if (!isObject(c)) return fail(['cases', i], at(undefined), `expected a mapping (name, input, expect...), got ${show(c)}`);
    const name = typeof c.name === 'string' && c.name.trim() !== '' ? c.name : undefined;
    const where = at(name);
    const caseFail = (path: (string | number)[], field: string, problem: string): never => fail(['cases', i, ...path], `${where}${field ? `.${field}` : ''}`, problem);
    unknownKeys(c, CASE_KEYS, (k, hint) => caseFail([k], k, `not a key of a case${hint}`));
    if (name === undefined) caseFail(['name'], 'name', `expected a non-empty name, got ${show(c.name)}`);
    if (names.has(name!)) caseFail(['name'], 'name', `the name is taken by cases[${names.get(name!)}]: give each case its own`);
    names.set(name!, i);
    if (c.description !== undefined && typeof c.description !== 'string') caseFail(['description'], 'description', `expected text, got ${show(c.description)}`);
    if (typeof c.expect !== 'string' || !EXPECTS.includes(c.expect as Outcome)) caseFail(['expect'], 'expect', `expected one of ${EXPECTS.join(', ')}, got ${show(c.expect)}`);
    if (c.expect_reason !== undefined && (typeof c.expect_reason !== 'string' || c.expect_reason === '')) {
      caseFail(['expect_reason'], 'expect_reason', `expected a deny_reason or a policy id, got ${show(c.expect_reason)}`);
    }
    const own = c.input === undefined ? {} : members(c.input, (k, problem) => caseFail(k === undefined ? ['input'] : ['input', k], k === undefined ? 'input' : `input.${k}`, problem));
    const input = { ...structuredClone(DEFAULT_TEST_INPUT), ...base, ...own };
    const v = validateInput(input);
    if (!v.ok) {
      // "<json pointer>: <message>"; the line is the member's, in the case or in the file's input.
      const m = /^(\/[^:]*): (.*)$/.exec(v.error ?? '') ?? [undefined, '/', v.error ?? 'invalid'];
      const pointer = m[1] === '/' ? '' : (m[1] ?? '');
      const member = pointer.split('/')[1] ?? '';
      const fromFile = own[member] === undefined && base[member] !== undefined;
      const field = `${where}.input${pointer.replace(/\//g, '.')}`;
      const problem = `${m[2]} (the input, defaults filled in, must match policies/decision-input.schema.json)${fromFile ? '; the value is the file\'s input' : ''}`;
      fail(fromFile ? ['input', member] : own[member] !== undefined ? ['cases', i, 'input', member] : ['cases', i], field, problem);
    }
    const data = c.data === undefined ? (fileData ? structuredClone(fileData) : EMPTY_DATA()) : checkedData(c.data, (problem) => caseFail(['data'], 'data', problem));
    return {
      file,
      line: lineOf(['cases', i]),
      name: name!,
      input: input as PolicyInput,
      data,
      expect: c.expect as Outcome,
      ...(c.expect_reason !== undefined ? { expect_reason: c.expect_reason as string } : {}),
    };
  });
}

function unknownKeys(o: Record<string, unknown>, known: string[], fail: (key: string, hint: string) => never): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const n = nearest(k, known);
    fail(k, n ? `; did you mean ${n}?` : `; expected ${known.join(', ')}`);
  }
}

/** Input members given by a file or a case: known names only. */
function members(v: unknown, fail: (key: string | undefined, problem: string) => never): Record<string, unknown> {
  if (!isObject(v)) return fail(undefined, `expected a mapping of decision input members, got ${show(v)}`);
  for (const k of Object.keys(v)) {
    if (INPUT_MEMBERS.includes(k)) continue;
    const n = nearest(k, INPUT_MEMBERS);
    fail(k, `not a member of the decision input${n ? `; did you mean ${n}?` : ` (policies/decision-input.schema.json)`}`);
  }
  return v;
}

function checkedData(v: unknown, fail: (problem: string) => never): PolicyData {
  if (!isObject(v)) return fail(`expected policy data (acl, allowlist), got ${show(v)}`);
  const data = structuredClone(v) as PolicyData;
  const { check } = inspectData(data);
  if (!check.ok) fail(`${check.error} (policy data must match policies/data.schema.json)`);
  return data;
}

/** The test files a path names: the file itself, or the .yaml, .yml and .json files of a directory (sorted, not recursive). */
export function testFilesAt(path: string): string[] {
  const at = resolve(path);
  const st = statSync(at, { throwIfNoEntry: false });
  if (!st) throw new PolicyTestFileError(at, undefined, '', 'no such file or directory');
  if (!st.isDirectory()) return [at];
  const files = readdirSync(at)
    .filter((n) => EXTENSIONS.some((x) => n.endsWith(x)))
    .sort()
    .map((n) => join(at, n));
  if (files.length === 0) throw new PolicyTestFileError(at, undefined, '', `holds no test files (${EXTENSIONS.join(', ')})`);
  return files;
}

/** Reads and parses one test file. */
export function readPolicyTestFile(file: string): PolicyTestCase[] {
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const st = fstatSync(fd);
    if (!st.isFile()) throw new PolicyTestFileError(file, undefined, '', 'not a regular file');
    if (st.size > MAX_TEST_FILE_BYTES) throw new PolicyTestFileError(file, undefined, '', `larger than ${MAX_TEST_FILE_BYTES} bytes`);
    text = readFileSync(fd, 'utf8');
  } catch (e) {
    if (e instanceof PolicyTestFileError) throw e;
    throw new PolicyTestFileError(file, undefined, '', `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return parsePolicyTestFile(text, file);
}
