// What a configuration file grants beyond the defaults (config/grants.ts):
// examples of each kind of grant and of what is not one, and property tests
// over random schema-valid files: a file with any grant is never classed as
// grant-free, and shown values can never forge or hide a line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify } from 'smol-toml';
import { configRoot, diffGrants, grantsOf, showValue } from '../../dist/config/grants.js';
import { LATCHGATE_TOML } from '../../dist/config/latchgate-toml.js';
import { checkSchema, leaves } from '../../dist/config/toml-schema.js';
import { prng } from '../fixtures/unit/helpers.mjs';

const FILE = '/home/me/proj/.latchgate/latchgate.toml';
const CTX = { file: FILE, cwd: '/home/me/proj', realpath: (p) => p };
const grants = (toml, ctx = CTX, kind = 'latchgate.toml') => grantsOf(parse(toml), kind, ctx);

test('defaults, limits, strict_net and a workspace inside the project grant nothing', () => {
  assert.deepEqual(grants(''), []);
  assert.deepEqual(grants('[sandbox.limits]\nnofile = 10\nnproc = 5\ntmp_size = "1g"\n[sandbox.network]\nstrict_net = true\nallow_ports = [443]\n'), []);
  assert.deepEqual(grants('[sandbox.network]\nstrict_net = false\n[sandbox.agent]\nro_mounts = []\nrw_mounts = []\n'), []);
  assert.deepEqual(grants('[sandbox.agent]\nworkspace = "/home/me/proj"\n'), []);
  assert.deepEqual(grants('[sandbox.agent]\nworkspace = "sub/dir"\n'), [], 'relative to the working directory, inside the project');
  assert.deepEqual(grants('[gate]\n[sandbox.agent.credentials]\n[identity.principals]\n[operators]\n'), [], 'empty sections name nothing');
  assert.equal(configRoot(FILE), '/home/me/proj');
  assert.equal(configRoot('/repo/ci/latchgate.toml'), '/repo/ci');
});

test('every kind of grant is listed, one line per element', () => {
  const g = grants(`
[sandbox.agent]
workspace = "/home/me"
ro_mounts = ["/opt/sdk"]
rw_mounts = ["/home/me", "/srv"]
pass_env = ["GOFLAGS"]
allow_hosts = ["api.example.com"]
principal = "box"
[sandbox.agent.credentials.anthropic]
upstream = "https://api.anthropic.com"
ca_file = "ca.pem"
[sandbox.agent.credentials.empty]
[sandbox.network]
allow_ports = [443, 8443]
extra_ca_certs = ["corp.pem"]
[sandbox.network.resolve]
"api.example.com" = "10.0.0.5:443"
[gate]
manifest_dirs = ["m"]
lease_ttl_seconds = 60
[identity.principals.1000]
name = "alice"
[operators.bob]
uid = 0
[policy]
engine = "opa-server"
[state]
dir = "/var/lib/x"
`);
  assert.deepEqual(g, [
    'workspace: /home/me',
    'ro_mounts: /opt/sdk',
    'rw_mounts: /home/me',
    'rw_mounts: /srv',
    'pass_env: GOFLAGS',
    'allow_hosts: api.example.com',
    'principal: box',
    'credentials.anthropic.upstream: https://api.anthropic.com',
    'credentials.anthropic.ca_file: /home/me/proj/.latchgate/ca.pem ("cannot be read: ENOENT")',
    'credentials.empty: {}',
    'allow_ports: 8443',
    'extra_ca_certs: /home/me/proj/.latchgate/corp.pem ("cannot be read: ENOENT")',
    'resolve."api.example.com": 10.0.0.5:443',
    'gate.manifest_dirs: /home/me/proj/.latchgate/m',
    'gate.lease_ttl_seconds: 60',
    'identity.principals.1000.name: alice',
    'operators.bob.uid: 0',
    'policy.engine: opa-server',
    'state.dir: /var/lib/x',
  ]);
});

test('a --sandbox-config file (agent keys at the top level) lists the same grants as [sandbox.agent]', () => {
  const standalone = grants('rw_mounts = ["/srv"]\nallow_hosts = ["a.com"]\n[credentials.x]\nheader = "h"\n', CTX, 'sandbox-config');
  const full = grants('[sandbox.agent]\nrw_mounts = ["/srv"]\nallow_hosts = ["a.com"]\n[sandbox.agent.credentials.x]\nheader = "h"\n');
  assert.deepEqual(standalone, full);
  assert.deepEqual(standalone, ['rw_mounts: /srv', 'allow_hosts: a.com', 'credentials.x.header: h']);
});

test('a mount or workspace that a symlink leads elsewhere shows where it really goes', () => {
  const links = { '/home/me/proj/cache': '/home/me', '/home/me/proj/ws': '/etc' };
  const ctx = { ...CTX, realpath: (p) => links[p] ?? p };
  assert.deepEqual(grants('[sandbox.agent]\nrw_mounts = ["/home/me/proj/cache"]\nworkspace = "ws"\n', ctx), ['rw_mounts: /home/me/proj/cache -> /home/me', 'workspace: /etc']);
  const missing = { ...CTX, realpath: () => undefined };
  assert.deepEqual(grants('[sandbox.agent]\nworkspace = "/home/me/proj/x"\n', missing), ['workspace: /home/me/proj/x'], 'a workspace that does not resolve is a grant (fail closed)');
});

test('hostile values are escaped: no line can be forged, no text hidden', () => {
  const g = grants('[sandbox.agent]\nallow_hosts = ["a.com\\n+ nothing else", "x\\u202ey", "q\\"uote"]\n[sandbox.agent.credentials."a b\\n"]\nheader = "h"\n');
  assert.deepEqual(g, ['allow_hosts: "a.com\\u000a+ nothing else"', 'allow_hosts: "x\\u202ey"', 'allow_hosts: "q\\"uote"', 'credentials."a b\\u000a".header: h']);
});

test('diffGrants: added and removed lines', () => {
  assert.deepEqual(diffGrants(['a', 'b'], ['b', 'c']), { added: ['c'], removed: ['a'] });
  assert.deepEqual(diffGrants(['a'], ['a']), { added: [], removed: [] });
});

// ------------------------------------------------------------------ properties

/** Every key of latchgate.toml, '*' standing for a name. */
const LEAVES = leaves(LATCHGATE_TOML);
const NOISE = ['a', 'b', '.', '-', '/', ' ', '"', '\\', '\n', '\u202e', '\u0000', 'é', '*', '+', ':'];

function randomString(r) {
  return Array.from({ length: r.below(10) }, () => (r.chance(0.7) ? r.pick([...'abcxyz019/.-']) : r.pick(NOISE))).join('');
}

/** A random value for a leaf, and whether it grants something (the oracle, written apart from the code under test). */
function randomLeaf(r, leaf) {
  const key = leaf.path.join('.');
  switch (leaf.type) {
    case 'bool':
      return { value: r.chance(0.5), grants: key !== 'sandbox.network.strict_net' };
    case 'int':
    case 'uint':
      return { value: 1 + r.below(100000), grants: !key.startsWith('sandbox.limits.') };
    case 'int[]': {
      const value = Array.from({ length: r.below(3) }, () => (r.chance(0.5) ? 443 : 1 + r.below(65535)));
      return { value, grants: value.some((p) => p !== 443) };
    }
    case 'string[]': {
      const value = Array.from({ length: r.below(3) }, () => randomString(r));
      return { value, grants: value.length > 0 };
    }
    case 'string':
      if (key === 'sandbox.agent.workspace') {
        const inside = r.chance(0.5);
        const value = inside ? r.pick(['.', 'src', '/home/me/proj', '/home/me/proj/a/../b']) : r.pick(['/', '..', '/home/me', '/home/me/proj2', '/etc', '../proj-other']);
        return { value, grants: !inside };
      }
      return { value: randomString(r), grants: !key.startsWith('sandbox.limits.') };
  }
  throw new Error(`no generator for ${leaf.type}`);
}

function set(doc, path, value) {
  let t = doc;
  for (const k of path.slice(0, -1)) t = t[k] ??= {};
  t[path.at(-1)] = value;
}

/** A name for a '*' table: a uid under [identity.principals], else anything a key may be. */
const nameFor = (r, leaf) => (leaf.path.includes('principals') ? String(r.below(70000)) : r.pick(['x', 'a b', 'k\n', 'api.example.com', '1000']));

function randomDoc(r, pool, emptyNames = true) {
  const doc = {};
  const grantsAt = new Map(); // a key set twice: the last value counts
  const n = r.below(5);
  for (let i = 0; i < n; i++) {
    const leaf = r.pick(pool);
    const { value, grants: g } = randomLeaf(r, leaf);
    const path = leaf.path.map((k) => (k === '*' ? nameFor(r, leaf) : k));
    set(doc, path, value);
    grantsAt.set(JSON.stringify(path), g);
  }
  let expected = [...grantsAt.values()].some(Boolean);
  // Sometimes an empty named route, principal or operator: a grant on its own.
  if (emptyNames && r.chance(0.1)) {
    set(doc, r.pick([['sandbox', 'agent', 'credentials', 'x'], ['operators', 'op'], ['identity', 'principals', '7']]), {});
    expected = true;
  }
  return { doc, expected };
}

test('property: 3000 random schema-valid files: grant-free exactly when every key is one that only narrows (seed 0x7e57)', () => {
  const seed = 0x7e57;
  const r = prng(seed);
  const failures = [];
  let grantFree = 0;
  for (let i = 0; i < 3000; i++) {
    const { doc, expected } = randomDoc(r, LEAVES);
    const text = stringify(doc);
    const parsed = parse(text);
    checkSchema('random.toml', parsed, LATCHGATE_TOML);
    const g = grantsOf(parsed, 'latchgate.toml', CTX);
    if ((g.length > 0) !== expected) failures.push(`case ${i}: expected ${expected ? 'grants' : 'none'}, got ${JSON.stringify(g)} for\n${text}`);
    if (g.length === 0) grantFree++;
  }
  assert.ok(grantFree > 100, `the generator should produce grant-free files too (got ${grantFree})`);
  assert.deepEqual(failures.slice(0, 5), [], `seed ${seed}: ${failures.length} failures`);
});

test('property: adding any grant key to a grant-free file always makes it grant something (seed 0xadd)', () => {
  const r = prng(0xadd);
  const narrowing = LEAVES.filter((l) => l.path[1] === 'limits' || l.path.at(-1) === 'strict_net');
  const failures = [];
  for (let i = 0; i < 2000; i++) {
    const { doc } = randomDoc(r, narrowing, false);
    assert.deepEqual(grantsOf(parse(stringify(doc)), 'latchgate.toml', CTX), [], 'limits and strict_net alone grant nothing');
    let pick;
    let v;
    do {
      pick = r.pick(LEAVES);
      v = randomLeaf(r, pick);
    } while (!v.grants);
    const path = pick.path.map((k) => (k === '*' ? nameFor(r, pick) : k));
    set(doc, path, v.value);
    const g = grantsOf(parse(stringify(doc)), 'latchgate.toml', CTX);
    if (g.length === 0) failures.push(`${path.join('.')} = ${JSON.stringify(v.value)} is classed as grant-free`);
  }
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failures`);
});

test('property: a shown value is one line of printable ASCII, and a quoted one reads back as the original', () => {
  const r = prng(0x5b0);
  for (let i = 0; i < 3000; i++) {
    const s = randomString(r) + (r.chance(0.3) ? String.fromCharCode(r.below(0x3000)) : '');
    const shown = showValue(s);
    assert.match(shown, /^[\x20-\x7e]*$/, JSON.stringify(s));
    if (shown.startsWith('"')) assert.equal(JSON.parse(shown), s);
    else assert.equal(shown, s);
  }
});

test('property: diffGrants: added is now minus before, removed before minus now', () => {
  const r = prng(0xd1ff);
  const pool = ['a', 'b', 'c', 'd', 'e', 'f'];
  for (let i = 0; i < 1000; i++) {
    const before = pool.filter(() => r.chance(0.5));
    const now = pool.filter(() => r.chance(0.5));
    const { added, removed } = diffGrants(before, now);
    assert.deepEqual(added, now.filter((x) => !before.includes(x)));
    assert.deepEqual(removed, before.filter((x) => !now.includes(x)));
    assert.deepEqual(diffGrants(now, now), { added: [], removed: [] });
  }
});
