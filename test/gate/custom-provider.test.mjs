// A custom provider as an operator makes one (docs/PROVIDERS.md): JavaScript
// built with componentize-js, its digest computed and written into a
// manifest with provider_source, executed through the gate's socket against
// a local HTTPS upstream. A manifest whose digest the file does not have is
// refused (403 provider_untrusted, recorded) without compiling anything; a
// file swapped after the gate started is refused at its next call.
// Tests run in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyReceipt } from '../../dist/ledger/receipt.js';
import { Agent, FIXTURE_MANIFESTS, grantAll, startGate } from '../helpers/gate.mjs';
import { buildJs, digestOf } from '../helpers/providers.mjs';
import { NO_OPENSSL, tlsUpstream } from '../helpers/tls-upstream.mjs';

const skip = NO_OPENSSL;
const SOURCE = fileURLToPath(new URL('../fixtures/providers/custom-js/provider.js', import.meta.url));
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

let dir;
let up;
let g;
let component;

/** A manifest of the custom provider: its digest, its file. */
const manifest = (id, digest, source) => `# Risk rationale: low; reads one URL on a test host.
action_id: "${id}"
version: "1.0.0"
provider_module_digest: "${digest}"
provider_source: "${source}"
required_imports: ["latchgate:io/http", "latchgate:io/log"]
io:
  request_schema:
    type: object
    required: [url]
    additionalProperties: false
    properties:
      url: { type: string, pattern: "^https://api\\\\.github\\\\.com/" }
      mode: { enum: [spin, escape] }
  max_request_bytes: 4096
  max_response_bytes: 65536
resource_limits:
  fuel: 50000000
  memory_mb: 64
  timeout_seconds: 20
  max_io_calls: 2
egress:
  profile: "proxy_allowlist"
  allowed_domains: ["api.github.com"]
  allowed_methods: [GET]
risk_level: "low"
verifier_kind: http_status
declared_side_effects: ["http_read"]
`;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-custom-'));
  const built = await buildJs(SOURCE, 'http-provider');
  // The operator's copy, next to the manifests, and its digest computed as `sha256sum` would.
  component = path.join(dir, 'words.wasm');
  copyFileSync(built.file, component);
  const digest = digestOf(readFileSync(component));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'words.yaml'), manifest('words', digest, '../words.wasm'));
  writeFileSync(path.join(manifests, 'tampered.yaml'), manifest('words_tampered', `sha256:${'0'.repeat(64)}`, '../words.wasm'));
  up = await tlsUpstream(['api.github.com']);
  // The default state directory of a CLI whose XDG_STATE_HOME is dir.
  g = await startGate({ stateDir: path.join(dir, 'latchgate'), config: { manifestDirs: [FIXTURE_MANIFESTS, manifests], resolve: up.pins(), extraCaCerts: [up.caFile] } });
  grantAll(g);
});

after(async () => {
  if (skip) return;
  await g?.close();
  up?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function agent() {
  const a = new Agent(g.socket);
  await a.lease();
  return a;
}

test('a componentize-js provider registered by its digest runs through the gate, reaches the upstream through the host, starts fresh each call', { skip }, async () => {
  const a = await agent();
  for (let i = 0; i < 2; i++) {
    const r = await a.execute('words', { url: 'https://api.github.com/a/b' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.output, { status: 200, words: 3, calls: 1 });
    assert.equal(r.body.verification.outcome, 'verified');
    const receipt = g.ctx.ledger.getReceipt(r.body.receipt_id);
    assert.deepEqual(verifyReceipt(g.ctx.keys, receipt), { ok: true });
    assert.deepEqual(receipt.provider_receipt, { fetched: 'https://api.github.com/a/b' });
    assert.equal(receipt.provider_module_digest, digestOf(readFileSync(component)));
  }
  assert.deepEqual(up.seen.map((s) => [s.method, s.url, s.headers.host]), [['GET', '/a/b', 'api.github.com'], ['GET', '/a/b', 'api.github.com']]);
  const shown = g.gate.getAction('words').provider;
  assert.equal(shown.trusted, true);
  assert.equal(shown.component_digest, digestOf(readFileSync(component)));
});

test('a provider that loops forever runs out of fuel: 502 with fuel_exhausted in its receipt, and the gate serves the next call', { skip }, async () => {
  const a = await agent();
  const spin = await a.execute('words', { url: 'https://api.github.com/x', mode: 'spin' });
  assert.equal(spin.status, 502, spin.text);
  assert.equal(spin.body.failure_class, 'fuel_exhausted');
  const receipt = g.ctx.ledger.getReceipt(spin.body.receipt_id);
  assert.equal(receipt.failure_class, 'fuel_exhausted');
  assert.deepEqual(verifyReceipt(g.ctx.keys, receipt), { ok: true });
  const next = await a.execute('words', { url: 'https://api.github.com/after' });
  assert.equal(next.status, 200, next.text);
});

test('a manifest whose digest the file does not have is refused, provider_untrusted, and recorded', { skip }, async () => {
  const before = up.seen.length;
  const a = await agent();
  const r = await a.execute('words_tampered', { url: 'https://api.github.com/x' });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.error, 'provider_untrusted');
  assert.match(r.body.message, /has digest sha256:[0-9a-f]{64}, not the sha256:0{64} its manifest trusts/);
  assert.equal(up.seen.length, before);
  const ev = g.ctx.ledger.query({ limit: 5 }).find((e) => e.event_type === 'action_call' && e.error?.code === 'provider_untrusted');
  assert.ok(ev, 'the refusal is in the ledger');
  assert.equal(g.gate.getAction('words_tampered').provider.trusted, false);
});

/** `latchgate providers logs ...` as the operator of the gate's state directory runs it. */
function logs(...args) {
  const env = { PATH: '/usr/bin:/bin', HOME: dir, XDG_STATE_HOME: dir, XDG_CONFIG_HOME: path.join(dir, 'config') };
  const r = spawnSync(process.execPath, [CLI, 'providers', 'logs', ...args], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r;
}
const jsonLines = (out) => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));

test('what a provider logs is kept for the operator, by call, failed calls included: `providers logs` filters it, escapes it on a terminal, and the agent never gets it', { skip }, async () => {
  const a = await agent();
  const ok = await a.execute('words', { url: 'https://api.github.com/logged' });
  assert.equal(ok.status, 200, ok.text);
  assert.ok(!ok.text.includes('fetched'), 'the log line is not in the answer');
  const spin = await a.execute('words', { url: 'https://api.github.com/x', mode: 'spin' });
  assert.equal(spin.body.failure_class, 'fuel_exhausted', spin.text);
  const loud = await a.execute('words', { url: 'https://api.github.com/loud', mode: 'escape' });
  assert.equal(loud.status, 200, loud.text);
  const [okR, spinR, loudR] = [ok, spin, loud].map((r) => g.ctx.ledger.getReceipt(r.body.receipt_id));

  const one = jsonLines(logs('--trace-id', okR.trace_id, '--json').stdout);
  assert.equal(one.length, 1);
  assert.deepEqual({ ...one[0], time: undefined }, { time: undefined, trace_id: okR.trace_id, action_id: 'words', principal: okR.principal, level: 'info', message: 'fetched', fields: [['status', '200']] });
  assert.ok(Date.parse(one[0].time) <= Date.now());
  // The call that ran out of fuel: what it logged before is there.
  assert.deepEqual(jsonLines(logs('--trace-id', spinR.trace_id, '--json').stdout).map((r) => [r.level, r.message]), [['warn', 'spinning']]);

  // A terminal gets the control characters as visible escapes; --json keeps the exact text, escaped as JSON.
  const text = logs('--level', 'error').stdout;
  assert.equal(text.split('\n').filter(Boolean).length, 1, text);
  assert.ok(text.includes(loudR.trace_id) && text.includes('error words'), text);
  assert.ok(text.includes(' "clear\\u{1b}[2Jscreen" "k\\u{202e}"="v\\u{7}"'), text);
  assert.ok(!/[\u0000-\u0009\u000b-\u001f\u202e]/.test(text), 'a control character reached the terminal');
  const raw = logs('--level', 'error', '--json').stdout;
  assert.ok(!/[\u0000-\u0009\u000b-\u001f\u202e]/.test(raw), raw);
  assert.deepEqual(jsonLines(raw).map((r) => [r.message, r.fields]), [['clear\u001b[2Jscreen', [['k\u202e', 'v\u0007']]]]);

  // The newest last; --limit keeps the newest.
  const all = jsonLines(logs('--action', 'words', '--limit', '0', '--json').stdout);
  assert.deepEqual(all.slice(-4).map((r) => [r.trace_id, r.message]), [[okR.trace_id, 'fetched'], [spinR.trace_id, 'spinning'], [loudR.trace_id, 'clear\u001b[2Jscreen'], [loudR.trace_id, 'fetched']]);
  assert.deepEqual(jsonLines(logs('-n', '1', '--json').stdout).map((r) => r.trace_id), [loudR.trace_id]);
  const none = logs('--principal', 'nobody');
  assert.equal(none.stdout, '');
  assert.match(none.stderr, /no provider log lines match/);
  // Kept in the state directory, for its owner alone.
  assert.equal(statSync(path.join(dir, 'latchgate', 'provider-logs.jsonl')).mode & 0o777, 0o600);
});

test('a component file swapped after the gate registered it is refused at its next call (runs last: it spoils the file)', { skip }, async () => {
  const a = await agent();
  const first = await a.execute('words', { url: 'https://api.github.com/one' });
  assert.equal(first.status, 200, first.text);
  // Other bytes under the trusted name.
  const bytes = readFileSync(component);
  bytes[bytes.length - 1] ^= 1;
  writeFileSync(component, bytes);
  const before = up.seen.length;
  const r = await a.execute('words', { url: 'https://api.github.com/two' });
  assert.equal(r.status, 502, r.text);
  assert.equal(r.body.failure_class, 'provider_untrusted');
  assert.match(r.body.message, /not the sha256:[0-9a-f]{64} the manifest trusts/);
  assert.equal(up.seen.length, before, 'the swapped file never ran');
});
