// Registry: the shipped definitions load; every kind of manifest mistake is
// reported with file:line, the field and what was expected; request and
// response validation name the JSON pointer of the offending field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_MANIFEST_DIR, parseManifest, Registry, RegistryError } from '../../dist/gate/registry.js';
import { MANIFEST_DEFAULTS } from '../../dist/gate/manifest-schema.js';
import { canonicalHash } from '../../dist/crypto/jcs.js';
import { openDb } from '../../dist/ledger/db.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const FIXTURES = fileURLToPath(new URL('../fixtures/manifests/', import.meta.url));
const GOOD = join(FIXTURES, 'good/manifests');
const BROKEN = join(FIXTURES, 'broken/manifests');

function registry(dirs = [], options) {
  const r = new Registry(openDb(':memory:'), dirs, options);
  r.migrate();
  return r;
}

/** Parses one broken fixture and returns its RegistryError. */
function brokenFixture(name) {
  const file = join(BROKEN, name);
  try {
    parseManifest(readFileSync(file, 'utf8'), file, { root: join(FIXTURES, 'broken') });
  } catch (e) {
    assert.ok(e instanceof RegistryError, `expected a RegistryError, got ${e}`);
    return e;
  }
  assert.fail(`${name} loaded without an error`);
}

function hasIssue(err, { line, field, message }) {
  const found = err.issues.find((i) => i.line === line && i.field === field && message.test(i.message));
  assert.ok(found, `no issue at line ${line} field ${field} matching ${message} in:\n${err.message}`);
  // The formatted message names the file, the line and the field.
  const formatted = `${found.file}:${line}: ${field ? `${field}: ` : ''}${found.message}`;
  assert.ok(err.message.includes(formatted), err.message);
  assert.match(found.file, /\.yaml$/);
}

test('the shipped definitions load, with digests, defaults and no warnings', () => {
  const r = registry();
  const res = r.load();
  assert.equal(res.actions, 11);
  assert.deepEqual(res.warnings, []);
  assert.deepEqual(
    r.list().map((a) => a.manifest.action_id),
    ['fs_delete', 'fs_list', 'fs_read', 'fs_write', 'github_comment_issue', 'github_create_issue', 'github_read', 'http_fetch', 'http_post', 'slack_notify_channel', 'webhook_notify'],
  );
  for (const a of r.list()) {
    assert.match(a.action_digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(a.action_digest, canonicalHash(a.manifest), `${a.manifest.action_id}: digest is the canonical hash of the manifest`);
    assert.ok(Object.isFrozen(a.manifest) && Object.isFrozen(a.manifest.io.request_schema), 'manifests are frozen');
    assert.equal(a.file.startsWith(BUILTIN_MANIFEST_DIR), true);
  }
  const fetch = r.get('http_fetch').manifest;
  assert.equal(fetch.risk_level, 'low');
  assert.equal(fetch.template.method, 'GET');
  assert.equal(fetch.resource_limits.max_host_response_bytes, MANIFEST_DEFAULTS.resource_limits.max_host_response_bytes);
  // The file-referenced response schema is inlined.
  assert.equal(typeof fetch.io.response_schema, 'object');
  assert.deepEqual(fetch.io.response_schema.required, ['status']);
  const post = r.get('http_post').manifest;
  assert.equal(post.risk_level, 'medium');
  assert.equal(post.cost, 1);
  const gh = r.get('github_read').manifest;
  assert.deepEqual(gh.secrets, [{ name: 'GITHUB_TOKEN', required: true }]);
  assert.match(gh.template.url_template, /^https:\/\/api\.github\.com\//);
  const issue = r.get('github_create_issue').manifest;
  assert.equal(issue.risk_level, 'high');
  assert.equal(issue.template.method, 'POST');
  const comment = r.get('github_comment_issue').manifest;
  assert.equal(comment.risk_level, 'high');
  assert.match(comment.template.url_template, /\/issues\/\{\{number\}\}\/comments$/);
  const slack = r.get('slack_notify_channel').manifest;
  assert.deepEqual(slack.secrets, [{ name: 'SLACK_BOT_TOKEN', required: true }]);
  assert.deepEqual(slack.egress.allowed_domains, ['slack.com']);
  assert.equal(r.get('webhook_notify').manifest.risk_level, 'medium');
  const fsw = r.get('fs_write').manifest;
  assert.equal(fsw.provider_module_digest, 'builtin:fs');
  assert.deepEqual(fsw.fs.allowed_operations, ['create', 'overwrite']);
  assert.equal(fsw.egress.profile, 'none');
  assert.deepEqual(fsw.egress.allowed_domains, []);
  assert.deepEqual(fsw.tags, ['fs', 'write']);
  assert.equal(r.get('fs_read').manifest.risk_level, 'low');
});

test('defaults fill what a manifest leaves out, and the digest covers them', (t) => {
  const dir = tempDir(t);
  const base = '# Risk rationale: test.\naction_id: "dd"\nversion: "1.0.0"\nprovider_module_digest: "builtin:noop"\nio:\n  request_schema: {type: object}\nrisk_level: low\nverifier_kind: none\n';
  const a = parseManifest(base, join(dir, 'a.yaml'));
  const m = a.manifest;
  assert.deepEqual(m.resource_limits, { fuel: 1_000_000, memory_mb: 64, timeout_seconds: 30, max_io_calls: 10, max_host_response_bytes: 10 * 1024 * 1024 });
  assert.equal(m.io.max_request_bytes, 64 * 1024);
  assert.equal(m.io.max_response_bytes, 1024 * 1024);
  assert.deepEqual(m.egress, { profile: 'none', allowed_domains: [], allowed_methods: [] });
  for (const k of ['tags', 'required_imports', 'secrets', 'declared_side_effects', 'required_scopes']) assert.deepEqual(m[k], [], k);
  // Spelling the defaults out gives the same action (the same digest)...
  const explicit = base + 'resource_limits: {fuel: 1000000, memory_mb: 64, timeout_seconds: 30, max_io_calls: 10, max_host_response_bytes: 10485760}\negress: {profile: none}\ntags: []\n';
  assert.equal(parseManifest(explicit, join(dir, 'b.yaml')).action_digest, a.action_digest);
  // ...and any real change changes it.
  assert.notEqual(parseManifest(base + 'cost: 2\n', join(dir, 'c.yaml')).action_digest, a.action_digest);
  assert.notEqual(parseManifest(base.replace('{type: object}', '{type: object, required: [x], properties: {x: {type: string}}}'), join(dir, 'c.yaml')).action_digest, a.action_digest);
});

test('a wrong type names file, line, field, expectation and the value', () => {
  const e = brokenFixture('wrong_type.yaml');
  hasIssue(e, { line: 8, field: 'io.max_request_bytes', message: /^expected an integer > 0, got "abc"$/ });
  hasIssue(e, { line: 9, field: 'io.max_response_bytes', message: /expected an integer > 0, got 0/ });
  hasIssue(e, { line: 12, field: 'resource_limits.memory_mb', message: /expected an integer > 0, got -5/ });
  hasIssue(e, { line: 14, field: 'risk_level', message: /one of low, medium, high, critical, got "severe"/ });
  // max_io_calls: 0 is allowed (all limits > 0 except that one).
  assert.ok(!e.issues.some((i) => i.field === 'resource_limits.max_io_calls'), e.message);
  assert.match(e.message, /wrong_type\.yaml:8: io\.max_request_bytes: expected an integer > 0, got "abc"/);
});

test('an unknown field is refused with the nearest valid name', () => {
  const e = brokenFixture('unknown_field.yaml');
  hasIssue(e, { line: 10, field: 'resource_limits.timeout_secs', message: /unknown field; did you mean "timeout_seconds"\?/ });
  hasIssue(e, { line: 13, field: 'riks_level', message: /unknown field; did you mean "risk_level"\?/ });
});

test('a bad provider digest is refused', () => {
  const e = brokenFixture('bad_digest.yaml');
  hasIssue(e, { line: 4, field: 'provider_module_digest', message: /"sha256:" and 64 lowercase hex digits, or "builtin:<name>", got "sha256:ABCDEF"/ });
});

test('a missing required field is named (and why, when it depends on another)', () => {
  const e = brokenFixture('missing_required.yaml');
  hasIssue(e, { line: 2, field: 'verifier_kind', message: /missing required field/ });
  hasIssue(e, { line: 2, field: 'template', message: /missing required field \(builtin:http_api needs a template\)/ });
});

test('YAML syntax errors give the line', () => {
  const e = brokenFixture('bad_syntax.yaml');
  assert.ok(e.issues.length >= 1);
  assert.ok(e.issues.every((i) => i.line >= 7 && i.line <= 8 && /^YAML: /.test(i.message)), e.message);
  assert.match(e.message, /bad_syntax\.yaml:7: YAML: /);
});

test('a schema file escaping the manifests root is refused (by path and by symlink)', (t) => {
  const e = brokenFixture('schema_escape.yaml');
  hasIssue(e, { line: 6, field: 'io.request_schema', message: /escapes the manifests' root/ });

  const dir = tempDir(t);
  mkdirSync(join(dir, 'defs/manifests'), { recursive: true });
  mkdirSync(join(dir, 'defs/schemas'));
  writeFileSync(join(dir, 'outside.json'), '{"type": "object"}');
  symlinkSync(join(dir, 'outside.json'), join(dir, 'defs/schemas/link.json'));
  writeFileSync(join(dir, 'defs/schemas/ok.json'), '{"type": "object"}');
  writeFileSync(join(dir, 'defs/schemas/notjson.json'), '{"type": "object", SECRET-CONTENT');
  const m = (ref) => `# Risk rationale: t.\naction_id: "xx"\nversion: "1.0.0"\nprovider_module_digest: "builtin:noop"\nio:\n  request_schema: "${ref}"\nrisk_level: low\nverifier_kind: none\n`;
  const file = join(dir, 'defs/manifests/x.yaml');
  const opts = { root: join(dir, 'defs') };
  assert.equal(parseManifest(m('../schemas/ok.json'), file, opts).manifest.io.request_schema.type, 'object');
  const refused = [
    ['../schemas/link.json', /escapes the manifests' root/],
    ['../../outside.json', /escapes the manifests' root/],
    [join(dir, 'defs/schemas/ok.json'), /must be relative/],
    ['../schemas/ok.yaml', /must name a \.json file/],
    ['../schemas/missing.json', /not found/],
    ['../schemas/notjson.json', /is not valid JSON/],
  ];
  for (const [ref, re] of refused) {
    assert.throws(() => parseManifest(m(ref), file, opts), (err) => {
      assert.ok(err instanceof RegistryError);
      assert.match(err.message, re);
      assert.match(err.message, /x\.yaml:6: io\.request_schema: /);
      assert.doesNotMatch(err.message, /SECRET-CONTENT/, 'a schema file is never echoed');
      return true;
    }, ref);
  }
});

test('a template variable the request schema does not declare is refused', () => {
  const e = brokenFixture('template_var.yaml');
  hasIssue(e, { line: 10, field: 'template.body_template.owner', message: /template variable "ownr" is not declared in io\.request_schema/ });
  assert.equal(e.issues.length, 1, e.message);
});

test('an invalid request schema (ajv strict mode) is refused', () => {
  const e = brokenFixture('bad_request_schema.yaml');
  hasIssue(e, { line: 6, field: 'io.request_schema', message: /not a valid JSON Schema .*unknown keyword: "minLenght"/ });
});

test('a template with a variable host is refused', () => {
  const e = brokenFixture('template_origin.yaml');
  hasIssue(e, { line: 7, field: 'template.url_template', message: /only allowed in the path and the query/ });
});

test('cross-field checks: egress, secrets, methods, hosts', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'x.yaml');
  const base = {
    head: '# Risk rationale: t.\naction_id: "xx"\nversion: "1.0.0"\nprovider_module_digest: "builtin:http_api"\nrisk_level: low\nverifier_kind: none\n',
    io: 'io:\n  request_schema: {type: object, properties: {id: {type: string}}}\n',
  };
  const cases = [
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{id}}"\negress: {profile: proxy_allowlist, allowed_domains: [other.test]}\n', /template\.url_template: host "api\.example\.test" is not in egress\.allowed_domains/],
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{id}}"\n', /egress\.profile: an HTTP template needs egress profile "proxy_allowlist"/],
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{id}}"\n  headers: {Authorization: "Bearer {{secret:TOKEN}}"}\negress: {profile: proxy_allowlist, allowed_domains: [api.example.test]}\n', /template\.headers\.Authorization: \{\{secret:TOKEN\}\} names a secret that is not declared/],
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{id}}"\n  body_template: {a: 1}\negress: {profile: proxy_allowlist, allowed_domains: [api.example.test]}\n', /a GET request has no body/],
    ['template:\n  method: POST\n  url_template: "https://api.example.test/{{id}}"\negress: {profile: proxy_allowlist, allowed_domains: [api.example.test], allowed_methods: [GET]}\n', /template\.method: POST is not in egress\.allowed_methods/],
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{id}}"\negress: {profile: proxy_allowlist, allowed_domains: ["API.example.test"]}\n', /normal form: "api\.example\.test"/],
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{id}}"\negress: {profile: proxy_allowlist, allowed_domains: ["10.0.0.1"]}\n', /egress\.allowed_domains\[0\]: .*IP address/],
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{id}}"\negress: {profile: proxy_allowlist}\n', /needs at least one allowed domain/],
    ['template:\n  method: GET\n  url_template: "{{id}}"\negress: {profile: none, allowed_domains: [a.test]}\n', /profile "none" allows no network access/],
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{ bad name }}"\negress: {profile: proxy_allowlist, allowed_domains: [api.example.test]}\n', /malformed placeholder/],
    ['template:\n  method: GET\n  url_template: "https://api.example.test/{{id}}"\negress: {profile: proxy_allowlist, allowed_domains: [api.example.test]}\nsecrets: [{name: A}, {name: A}]\n', /secrets\[1\]\.name: secret "A" is declared twice/],
    ['template:\n  method: DELETE\n  url_template: "https://api.example.test/{{id}}"\negress: {profile: proxy_allowlist, allowed_domains: [api.example.test]}\ndeclared_side_effects: [http_read]\n', /:10: template\.method: a DELETE template is a "http_delete" side effect; add "http_delete" to declared_side_effects/],
  ];
  for (const [body, re] of cases) {
    assert.throws(() => parseManifest(base.head + base.io + body, file), (e) => e instanceof RegistryError && re.test(e.message), `${body} → ${re}`);
  }
  assert.throws(
    () => parseManifest(base.head.replace('builtin:http_api', 'builtin:fs') + base.io + 'fs:\n  allowed_operations: [read, delete]\ndeclared_side_effects: [fs_read]\n', file),
    /:10: fs\.allowed_operations\[1\]: fs operation "delete" is a "fs_delete" side effect/,
  );
  assert.throws(
    () => parseManifest(base.head.replace('builtin:http_api', 'builtin:fs') + base.io + 'fs:\n  allowed_operations: [list]\ndeclared_side_effects: [fs_write]\n', file),
    /fs\.allowed_operations\[0\]: fs operation "list" is a "fs_read" side effect/,
  );
  assert.throws(
    () => parseManifest(base.head.replace('builtin:http_api', 'builtin:fs') + base.io + 'fs:\n  allowed_operations: [read]\n  allowed_paths: ["src/**", "a**b"]\n  denied_paths: ["/etc/**"]\ndeclared_side_effects: [fs_read]\n', file),
    (e) => e instanceof RegistryError && /:11: fs\.allowed_paths\[1\]: the glob "a\*\*b" has "\*\*" inside/.test(e.message) && /:12: fs\.denied_paths\[0\]: the glob "\/etc\/\*\*" is absolute/.test(e.message),
  );
  parseManifest(base.head.replace('builtin:http_api', 'builtin:fs') + base.io + 'fs:\n  allowed_operations: [read, list, stat]\n  allowed_paths: ["src/**"]\n  denied_paths: ["**/.env"]\ndeclared_side_effects: [fs_read]\n', file);
  assert.throws(
    () => parseManifest(base.head.replace('builtin:http_api', 'builtin:noop') + 'io:\n  request_schema: {type: array}\n', file),
    /must describe a JSON object/,
  );
  assert.throws(
    () => parseManifest(base.head.replace('risk_level: low', 'risk_level: high').replace('verifier_kind: none', 'verifier_kind: http_status') + base.io + 'template:\n  method: POST\n  url_template: "https://api.example.test/{{id}}"\negress: {profile: proxy_allowlist, allowed_domains: [api.example.test]}\ndeclared_side_effects: [http_write]\n', file),
    /verification_config: missing required field \(a high or critical http_write/,
  );
});

test('odd YAML: empty file, a list, aliases, duplicate keys, multiple documents', (t) => {
  const file = join(tempDir(t), 'x.yaml');
  const cases = [
    ['', /:1: expected a mapping of manifest fields/],
    ['- a\n- b\n', /:1: expected a mapping/],
    ['a: &x [*x]\n', /YAML|unknown field/],
    ['action_id: "a_b"\naction_id: "a_c"\n', /:2: YAML: Map keys must be unique/],
    ['action_id: "ab"\n---\naction_id: "cd"\n', /YAML: /],
    ['action_id: !!binary aGVsbG8=\n', /action_id: expected a lowercase id/],
    ['__proto__: {x: 1}\n', /__proto__: unknown field/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseManifest(text, file), (e) => e instanceof RegistryError && re.test(e.message), JSON.stringify(text));
  }
});

test('a missing "# Risk rationale:" comment is a warning, not an error', () => {
  const r = registry([GOOD], { builtin: false });
  const res = r.load();
  assert.equal(res.actions, 2);
  assert.equal(res.warnings.length, 1);
  assert.match(res.warnings[0], /echo_v0\.yaml: no "# Risk rationale:" comment/);
  assert.deepEqual(r.warnings, res.warnings);
});

test('versions: get() is the highest, get(id, v) a specific one, list() the latest of each', () => {
  const r = registry([GOOD]);
  r.load();
  assert.deepEqual(r.versions('echo'), ['0.9.0', '1.0.0']);
  assert.equal(r.get('echo').manifest.version, '1.0.0');
  assert.equal(r.get('echo', '0.9.0').manifest.provider_module_digest, `sha256:${'0'.repeat(64)}`);
  assert.equal(r.get('echo', '2.0.0'), undefined);
  assert.equal(r.get('nope'), undefined);
  assert.equal(r.list().filter((a) => a.manifest.action_id === 'echo').length, 1);
  assert.equal(r.list().length, 12);
});

test('validateRequest names the JSON pointer of each offending field', async () => {
  const r = registry([GOOD], { builtin: false });
  r.load();
  assert.deepEqual(await r.validateRequest('echo', { title: 'x', items: [{ name: 'a' }] }), { ok: true });
  const bad = await r.validateRequest('echo', { title: 7, items: [{ name: 'a' }, { name: 'b' }, { name: 'c' }, { qty: 0 }], extra: true });
  assert.equal(bad.ok, false);
  const pointers = bad.errors.map((e) => e.pointer).sort();
  assert.deepEqual(pointers, ['/extra', '/items/3/name', '/items/3/qty', '/title']);
  assert.match(bad.errors.find((e) => e.pointer === '/items/3/name').message, /missing required field "name"/);
  assert.match(bad.errors.find((e) => e.pointer === '/title').message, /must be string/);
  assert.deepEqual((await r.validateRequest('echo', { items: [] })).errors, [{ pointer: '/title', message: 'missing required field "title"' }]);
  // A specific version's schema.
  assert.deepEqual(await r.validateRequest('echo', { title: 'x' }, '0.9.0'), { ok: true });
  assert.equal((await r.validateRequest('nope', {})).ok, false);
  // Keys with "/" and "~" are escaped in pointers (RFC 6901).
  const odd = await r.validateRequest('echo', { title: 'x', items: [], 'a/b~c': 1 });
  assert.deepEqual(odd.errors.map((e) => e.pointer), ['/a~1b~0c']);
  // The cap on reported errors.
  const many = await r.validateRequest('echo', { title: 'x', items: Array.from({ length: 100 }, () => ({})) });
  assert.equal(many.errors.length, 20);
});

test('validateResponse checks against the response schema (inline or file)', async () => {
  const r = registry();
  r.load();
  assert.deepEqual(await r.validateResponse('http_fetch', { status: 200, headers: { 'content-type': 'text/plain' }, body: 'hi' }), { ok: true });
  const bad = await r.validateResponse('http_fetch', { status: 'ok', secret: 1 });
  assert.deepEqual(bad.errors.map((e) => e.pointer).sort(), ['/secret', '/status']);
  assert.deepEqual((await r.validateResponse('github_create_issue', { status: 201, body: { number: 'x' } })).errors.map((e) => e.pointer), ['/body/number']);
  // An action without a response schema accepts any response.
  const g = registry([GOOD], { builtin: false });
  g.load();
  assert.deepEqual(await g.validateResponse('echo', { anything: true }), { ok: true });
});

test('the shipped requests validate as documented', async () => {
  const r = registry();
  r.load();
  const ok = async (id, body) => assert.deepEqual(await r.validateRequest(id, body), { ok: true }, id);
  const no = async (id, body, pointer) => {
    const v = await r.validateRequest(id, body);
    assert.equal(v.ok, false, id);
    assert.ok(v.errors.some((e) => e.pointer === pointer), `${id}: ${JSON.stringify(v.errors)}`);
  };
  await ok('http_fetch', { url: 'https://httpbin.org/get' });
  await no('http_fetch', { url: 'ftp://x.org/a' }, '/url');
  await ok('http_post', { url: 'https://httpbin.org/post', body: { a: 1 } });
  await no('http_post', { url: 'https://httpbin.org/post', body: 'text' }, '/body');
  await ok('github_read', { owner: 'octocat', repo: 'hello-world', resource: 'issues' });
  await no('github_read', { owner: 'octocat', repo: '..', resource: 'issues' }, '/repo');
  await no('github_read', { owner: 'octocat', repo: 'x', resource: 'hooks' }, '/resource');
  await ok('github_create_issue', { owner: 'o', repo: 'r', title: 't', body: '', labels: [] });
  await no('github_create_issue', { owner: 'o', repo: 'r', title: '', body: '', labels: [] }, '/title');
  await ok('fs_read', { path: 'src/a.ts' });
  await ok('fs_write', { path: 'src/a.ts', content_base64: 'aGk=' });
  await no('fs_write', { path: 'src/a.ts', content_base64: 'aGk=', mode: 'append' }, '/mode');
});

test('a broken directory reports every file and loads nothing', () => {
  const r = registry([BROKEN], { builtin: false });
  const res = r.reload();
  assert.equal(res.ok, false);
  const files = new Set(res.errors.map((e) => e.file.split('/').pop()));
  assert.deepEqual([...files].sort(), [
    'bad_digest.yaml', 'bad_request_schema.yaml', 'bad_syntax.yaml', 'missing_required.yaml', 'schema_escape.yaml',
    'template_origin.yaml', 'template_var.yaml', 'unknown_field.yaml', 'wrong_type.yaml',
  ]);
  assert.ok(res.errors.every((e) => Number.isInteger(e.line) && e.line >= 1), 'every error has a line');
  assert.deepEqual(r.list(), []);
  assert.throws(() => r.load(), RegistryError);
});

test('a missing directory is an error naming it', (t) => {
  const r = registry([join(tempDir(t), 'nope')], { builtin: false });
  assert.throws(() => r.load(), /nope: cannot read the manifest directory \(ENOENT\)/);
});

test('header names and values are checked with their line', (t) => {
  const text = [
    '# Risk rationale: t.',
    'action_id: "hh"',
    'version: "1.0.0"',
    'provider_module_digest: "builtin:http_api"',
    'risk_level: low',
    'verifier_kind: none',
    'io:',
    '  request_schema: {type: object}',
    'template:',
    '  method: GET',
    '  url_template: "https://a.test/x"',
    '  headers:',
    '    Bad Name: x',
    '    X-Ok: 5',
    'egress: {profile: proxy_allowlist, allowed_domains: [a.test]}',
    'declared_side_effects: [http_read]',
  ].join('\n');
  assert.throws(() => parseManifest(text, join(tempDir(t), 'h.yaml')), (e) => {
    assert.match(e.message, /h\.yaml:13: template\.headers\["Bad Name"\]: invalid name; expected an HTTP header name/);
    assert.match(e.message, /h\.yaml:14: template\.headers\.X-Ok: expected a header value \(a string\), got 5/);
    return true;
  });
});
