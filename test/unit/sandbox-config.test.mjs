// parseConfig(...).sandbox: the [sandbox] part of latchgate.toml, checked against
// its schema with errors that name the file, the key and what was expected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { LaunchError } from '../../dist/core/errors.js';
import { assertLaunchError, prng } from '../fixtures/unit/helpers.mjs';

const FILE = '/home/alice/project/latchgate.toml';

const VALID = `# latchgate configuration
[sandbox.agent]
workspace = "/srv/project"
allow_hosts = ["api.example.com", "*.example.org"]
ro_mounts = ["/opt/tools", "/srv/data"]
rw_mounts = ["/var/cache/build"]
pass_env = ["MY_TOKEN", "OTHER"]

[sandbox.limits]
nofile = 4096
nproc = 512
tmp_size = "2g"

[sandbox.network]
strict_net = true
`;

const parse = (text) => parseConfig(FILE, text).sandbox;

test('maps every field of a valid document', () => {
  assert.deepEqual(parse(VALID), {
    workspace: '/srv/project',
    allowHosts: ['api.example.com', '*.example.org'],
    roMounts: ['/opt/tools', '/srv/data'],
    rwMounts: ['/var/cache/build'],
    passEnv: ['MY_TOKEN', 'OTHER'],
    limits: { nofile: 4096, nproc: 512, tmpSize: '2g' },
    strictNet: true,
    principal: undefined,
    network: { allowPorts: undefined, extraCaCerts: [], upstreamProxy: undefined, noProxy: undefined, resolve: new Map() },
    credentials: new Map(),
    gateTools: true,
  });
});

test('[sandbox.network] upstream_proxy and no_proxy are read as written (checked when the launch is planned)', () => {
  const r = parse('[sandbox.network]\nupstream_proxy = "http://u:p@proxy.corp:3128"\nno_proxy = [".corp", "10.0.0.0/8"]\n');
  assert.equal(r.network.upstreamProxy, 'http://u:p@proxy.corp:3128');
  assert.deepEqual(r.network.noProxy, ['.corp', '10.0.0.0/8']);
  assertLaunchError(() => parse('[sandbox.network]\nupstream_proxy = 3128\n'), LaunchError, FILE, 'upstream_proxy');
});

test('inline tables and dotted keys mean the same', () => {
  const r = parse('sandbox.agent.workspace = "/w"\nsandbox.network = { strict_net = false }\n[sandbox.limits]\nnproc = 7\n');
  assert.equal(r.workspace, '/w');
  assert.equal(r.strictNet, false);
  assert.equal(r.limits.nproc, 7);
});

test('an empty document (or empty sections) gives the defaults', () => {
  const defaults = { workspace: undefined, allowHosts: [], roMounts: [], rwMounts: [], passEnv: [], principal: undefined, limits: { nofile: undefined, nproc: undefined, tmpSize: undefined }, strictNet: undefined, network: { allowPorts: undefined, extraCaCerts: [], upstreamProxy: undefined, noProxy: undefined, resolve: new Map() }, credentials: new Map(), gateTools: true };
  assert.deepEqual(parse(''), defaults);
  assert.deepEqual(parse('# nothing\n'), defaults);
  assert.deepEqual(parse('[sandbox]\n[sandbox.agent]\n[sandbox.limits]\n[sandbox.network]\n'), defaults);
});

test('unknown keys are refused with the nearest valid name, the file and the key', () => {
  const cases = [
    ['[sandbox.agent]\nro_mount = ["/x"]\n', 'ro_mount', 'ro_mounts'],
    ['[sandbox.agent]\nallow_host = ["x.com"]\n', 'allow_host', 'allow_hosts'],
    ['[sandbox.agent]\nworkspce = "/x"\n', 'workspce', 'workspace'],
    ['[sandbox.agnet]\nworkspace = "/x"\n', 'agnet', 'agent'],
    ['[sandbox.limit]\nnofile = 1\n', 'limit', 'limits'],
    ['[sandbox.limits]\nno_file = 1\n', 'no_file', 'nofile'],
    ['[sandbox.network]\nstrictnet = true\n', 'strictnet', 'strict_net'],
    ['[sandbx.agent]\n', 'sandbx', 'sandbox'],
  ];
  for (const [text, key, suggestion] of cases) {
    assertLaunchError(() => parse(text), LaunchError, FILE, `key "${key}"`, 'unknown key', `did you mean "${suggestion}"?`);
  }
});

test('the message says in which table the unknown key is', () => {
  assertLaunchError(() => parse('[sandbox.agent]\nro_mount = []\n'), LaunchError, `${FILE}: [sandbox.agent] key "ro_mount"`);
  assertLaunchError(() => parse('[sandbox.agnet]\n'), LaunchError, `${FILE}: [sandbox] key "agnet"`);
});

test('an unknown key with no near match lists the valid ones', () => {
  const e = assertLaunchError(() => parse('[sandbox.agent]\ncompletely_different = 1\n'), LaunchError, 'key "completely_different"', 'expected one of:');
  for (const k of ['workspace', 'allow_hosts', 'ro_mounts', 'rw_mounts', 'pass_env']) assert.ok(e.message.includes(k), k);
});

test('keys named like Object.prototype members are unknown keys, not schema entries', () => {
  const failures = [];
  for (const key of ['constructor', 'hasOwnProperty', 'toString', 'valueOf', '__proto__']) {
    for (const value of ['"x"', '["x"]', '{}', '1']) {
      const text = `[sandbox.agent]\n${JSON.stringify(key)} = ${value}\n`;
      try {
        const r = parse(text);
        failures.push(`${JSON.stringify(text)} was accepted: ${JSON.stringify(r)}`);
      } catch (e) {
        if (!(e instanceof LaunchError)) failures.push(`${JSON.stringify(text)} threw ${e}`);
        else if (!/unknown key/.test(e.message) || !e.message.includes(`"${key}"`)) failures.push(`${JSON.stringify(text)}: ${e.message}`);
      }
    }
  }
  assert.deepEqual(failures, []);
});

test('wrong types name the key and the expected type', () => {
  const cases = [
    ['[sandbox.agent]\nworkspace = 1\n', 'workspace', 'expected a string'],
    ['[sandbox.agent]\nworkspace = ["/x"]\n', 'workspace', 'expected a string'],
    ['[sandbox.agent]\nworkspace = 1979-05-27\n', 'workspace', 'expected a string'],
    ['[sandbox.agent]\nallow_hosts = "x.com"\n', 'allow_hosts', 'expected an array of strings'],
    ['[sandbox.agent]\nallow_hosts = ["x.com", 1]\n', 'allow_hosts', 'expected an array of strings'],
    ['[sandbox.agent]\npass_env = [["A"]]\n', 'pass_env', 'expected an array of strings'],
    ['[sandbox.agent]\nro_mounts = {a = "b"}\n', 'ro_mounts', 'expected an array of strings'],
    ['[sandbox.limits]\nnofile = "4096"\n', 'nofile', 'expected a positive integer'],
    ['[sandbox.limits]\nnofile = 0\n', 'nofile', 'expected a positive integer'],
    ['[sandbox.limits]\nnproc = -1\n', 'nproc', 'expected a positive integer'],
    ['[sandbox.limits]\nnproc = 1.5\n', 'nproc', 'expected a positive integer'],
    ['[sandbox.limits]\nnproc = inf\n', 'nproc', 'expected a positive integer'],
    ['[sandbox.limits]\ntmp_size = 2\n', 'tmp_size', 'expected a string'],
    ['[sandbox.network]\nstrict_net = "yes"\n', 'strict_net', 'expected true or false'],
    ['[sandbox.network]\nstrict_net = 1\n', 'strict_net', 'expected true or false'],
  ];
  for (const [text, key, expected] of cases) {
    assertLaunchError(() => parse(text), LaunchError, FILE, `key "${key}"`, expected);
  }
});

test('a value where a table belongs is refused', () => {
  assertLaunchError(() => parse('sandbox = 1\n'), LaunchError, FILE, '[sandbox] must be a table');
  assertLaunchError(() => parse('sandbox = ["a"]\n'), LaunchError, FILE, '[sandbox] must be a table');
  assertLaunchError(() => parse('[sandbox]\nagent = "x"\n'), LaunchError, FILE, '[sandbox.agent] must be a table');
  assertLaunchError(() => parse('[sandbox]\nlimits = [1]\n'), LaunchError, FILE, '[sandbox.limits] must be a table');
});

test('a date where a table belongs is refused, not silently ignored', () => {
  const failures = [];
  for (const text of ['sandbox = 1979-05-27T07:32:00Z\n', '[sandbox]\nagent = 1979-05-27T07:32:00Z\n', '[sandbox]\nnetwork = 07:32:00\n']) {
    try {
      const r = parse(text);
      failures.push(`${JSON.stringify(text)} was accepted: ${JSON.stringify(r)}`);
    } catch (e) {
      if (!(e instanceof LaunchError) || !/must be a table/.test(e.message)) failures.push(`${JSON.stringify(text)}: ${e}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('invalid TOML names the file and the line', () => {
  const cases = [
    ['[sandbox.agent]\nworkspace = "/x"\nallow_hosts = [\n', null],
    ['[sandbox.agent]\nworkspace = /x\n', 2],
    ['[sandbox.agent]\n\n\nworkspace = "unterminated\n', 4],
    ['[sandbox.agent\n', 1],
    ['[sandbox.agent]\nworkspace = "a"\nworkspace = "b"\n', 3],
  ];
  for (const [text, line] of cases) {
    const e = assertLaunchError(() => parse(text), LaunchError, FILE, 'not valid TOML', /line \d+, column \d+/);
    if (line !== null) assert.ok(e.message.includes(`line ${line},`), `${JSON.stringify(text)}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), 'one line');
  }
});

const NOISE = [...'[]{}=".,\'#\n \t\\-_+:0123456789abcxyzABC', 'ü', '😀', '\u0000', '\u007f', '"""', "'''", '\r\n'];

function mutate(r, text) {
  let s = text;
  for (let n = 1 + r.below(3); n > 0; n--) {
    const i = r.below(s.length + 1);
    const op = r.below(3);
    if (op === 0) s = s.slice(0, i) + s.slice(i + 1 + r.below(3));
    else if (op === 1) s = s.slice(0, i) + r.pick(NOISE) + s.slice(i);
    else s = s.slice(0, i) + r.pick(NOISE) + s.slice(i + 1);
  }
  return s;
}

test('fuzz: 1000 mutated documents give a well-typed result or a LaunchError', () => {
  const seed = 20240611;
  const r = prng(seed);
  const failures = [];
  let results = 0;
  for (let i = 0; i < 1000; i++) {
    const text = mutate(r, VALID);
    let c;
    try {
      c = parse(text);
    } catch (e) {
      if (!(e instanceof LaunchError)) failures.push(`${JSON.stringify(text)} threw ${e?.name}: ${e?.message}`);
      else if (!e.message.startsWith(`${FILE}:`)) failures.push(`${JSON.stringify(text)}: message does not start with the file: ${e.message}`);
      continue;
    }
    results++;
    const strings = (v) => Array.isArray(v) && v.every((x) => typeof x === 'string');
    const posInt = (v) => v === undefined || (Number.isInteger(v) && v > 0);
    const ok = (c.workspace === undefined || typeof c.workspace === 'string') &&
      strings(c.allowHosts) && strings(c.roMounts) && strings(c.rwMounts) && strings(c.passEnv) &&
      posInt(c.limits.nofile) && posInt(c.limits.nproc) &&
      (c.limits.tmpSize === undefined || typeof c.limits.tmpSize === 'string') &&
      (c.strictNet === undefined || typeof c.strictNet === 'boolean');
    if (!ok) failures.push(`${JSON.stringify(text)} gave a mistyped result ${JSON.stringify(c)}`);
  }
  assert.ok(results > 20, `some mutations should stay valid (got ${results})`);
  assert.deepEqual(failures.slice(0, 10), [], `seed ${seed}: ${failures.length} failures`);
});
