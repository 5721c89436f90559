// The built-in actions run for real through the gate's socket: the
// WebAssembly providers (builtin:http_api, builtin:fs) on fresh instances,
// their host I/O the only way out. HTTP actions reach a local HTTPS upstream
// that stands in for api.github.com and slack.com (pinned with
// [gate.resolve], its certificate from a test CA in [gate] extra_ca_certs);
// the upstream receives exactly the request the manifest's template
// describes, with the secret the host filled in; the receipt is signed,
// stored and verified, and the chain verifies. The high-risk one goes through
// approval. fs actions read and write under the configured root only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyReceipt } from '../../dist/ledger/receipt.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { callHosts } from '../../dist/gate/provider-hosts.js';
import { installProtectedDirs } from '../../dist/gate/install-paths.js';
import { BUILTIN_PROVIDERS, builtinProvider, PREBUILT_DIR } from '../../dist/providers/builtins.js';
import { Agent, grantAll, operatorCaller, startGate } from '../helpers/gate.mjs';
import { admin, waitFor } from '../helpers/gate-faults.mjs';
import { NO_OPENSSL, tlsUpstream } from '../helpers/tls-upstream.mjs';

const skip = NO_OPENSSL;
const TOKEN = 'ghp_' + 'x'.repeat(36);
const AGE_KEY = 'AGE-SECRET-KEY-1' + 'Q'.repeat(58);
const SLACK = 'xoxb-' + '1'.repeat(30);
const HOOK = 'whsec_' + '2'.repeat(24);

let dir;
let root;
let up;
let seen;
let g;

before(async () => {
  if (skip) return;
  up = await tlsUpstream(['api.github.com', 'slack.com', 'httpbin.org', 'hooks.example.com'], (req, res) => {
    if (req.url === '/repos/octo/demo/issues' && req.method === 'POST') {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 7, number: 42, html_url: 'https://github.com/octo/demo/issues/42', echoed_auth: req.headers.authorization }));
      return true;
    }
    if (req.url === '/api/chat.postMessage') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, ts: '1.2' }));
      return true;
    }
    return false;
  });
  seen = up.seen;
  dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-builtins-'));
  root = path.join(dir, 'workspace');
  mkdirSync(path.join(root, 'src'), { recursive: true });
  writeFileSync(path.join(root, 'src', 'hello.txt'), 'hello, file\n');
  writeFileSync(path.join(root, '.env'), 'SECRET=1\n');
  // The age key of [secrets], kept (unwisely) under the fs root.
  mkdirSync(path.join(root, 'docs', 'keys'), { recursive: true });
  writeFileSync(path.join(root, 'docs', 'keys', 'age-key.txt'), `${AGE_KEY}\n`, { mode: 0o600 });
  writeFileSync(path.join(root, 'docs', 'keys', 'readme.txt'), 'beside the key\n');
  process.env.LATCHGATE_SECRET_GITHUB_TOKEN = TOKEN;
  process.env.LATCHGATE_SECRET_SLACK_BOT_TOKEN = SLACK;
  process.env.LATCHGATE_SECRET_WEBHOOK_TOKEN = HOOK;
  g = await startGate({
    stateDir: path.join(dir, 'state'),
    config: { resolve: up.pins(), extraCaCerts: [up.caFile], providers: { fs: { root, principals: new Map(), actions: new Map() } } },
    secrets: { ageKeyFile: path.join(root, 'docs', 'keys', 'age-key.txt'), cacheSeconds: 300 },
  });
  grantAll(g);
});

after(async () => {
  if (skip) return;
  await g?.close();
  up?.close();
  delete process.env.LATCHGATE_SECRET_GITHUB_TOKEN;
  delete process.env.LATCHGATE_SECRET_SLACK_BOT_TOKEN;
  delete process.env.LATCHGATE_SECRET_WEBHOOK_TOKEN;
  rmSync(dir, { recursive: true, force: true });
});

/** The stored receipt of a response, checked to verify, and the ledger's chain intact. */
function receiptOf(body) {
  assert.ok(body.receipt_id, `no receipt_id in ${JSON.stringify(body)}`);
  const r = g.ctx.ledger.getReceipt(body.receipt_id);
  assert.ok(r, `receipt ${body.receipt_id} is not stored`);
  assert.deepEqual(verifyReceipt(g.ctx.keys, r), { ok: true });
  const v = verifyLedger(g.db, g.ctx.keys);
  assert.equal(v.intact, true, JSON.stringify(v.first_bad ?? v.receipts));
  return r;
}

async function agent(socket = g.socket) {
  const a = new Agent(socket);
  await a.lease();
  return a;
}

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

test('http_fetch: the upstream gets exactly the GET the template describes; the output, the host evidence and the receipt agree', { skip }, async () => {
  const before = seen.length;
  const a = await agent();
  const r = await a.execute('http_fetch', { url: 'https://api.github.com/zen?x=1' });
  assert.equal(r.status, 200, r.text);
  const got = seen.slice(before);
  assert.equal(got.length, 1);
  assert.equal(got[0].method, 'GET');
  assert.equal(got[0].url, '/zen?x=1');
  assert.equal(got[0].headers.host, 'api.github.com');
  assert.equal(got[0].headers.accept, 'application/json, text/plain;q=0.9, */*;q=0.5');
  assert.equal(got[0].headers.authorization, undefined);
  assert.equal(r.body.output.status, 200);
  assert.equal(r.body.output.body, 'hello from /zen?x=1');
  assert.equal(r.body.verification.outcome, 'verified');
  const receipt = receiptOf(r.body);
  const http = receipt.effect_evidence.filter((e) => e.kind === 'http');
  assert.equal(http.length, 1);
  assert.equal(http[0].status, 200);
  assert.equal(http[0].url, 'https://api.github.com/zen?x=1');
  assert.equal(http[0].body_sha256, sha256('hello from /zen?x=1'));
  assert.match(receipt.provider_module_digest, /^builtin:http_api$/);
});

test('http_fetch to a host outside its allowlist, or to another port, is refused before anything runs', { skip }, async () => {
  const before = seen.length;
  const a = await agent();
  const r = await a.execute('http_fetch', { url: 'https://evil.example/steal' });
  assert.equal(r.status, 400, r.text);
  assert.match(r.body.message, /not in the action's egress allowlist/);
  const port = await a.execute('http_fetch', { url: 'https://api.github.com:8443/x' });
  assert.equal(port.status, 400, port.text);
  assert.equal(seen.length, before, 'nothing reached the upstream');
});

test('the connection to a call\'s target opens only once the policy allowed it and no human holds it; a run refused later closes it unused', { skip }, async () => {
  const a = await agent();
  // Denied: tester loses http_fetch for this case.
  g.gate.admin.policyRevoke(operatorCaller(), { principal: 'tester', actions: ['http_fetch'] });
  try {
    const conns = up.connections;
    const denied = await a.execute('http_fetch', { url: 'https://api.github.com/denied' });
    assert.equal(denied.status, 403, denied.text);
    // Held for a human: the request is stored, nothing is opened.
    const held = await (await agent(g.agentSocket)).execute('github_create_issue', { owner: 'octo', repo: 'demo', title: 'held', body: 'b', labels: [] });
    assert.equal(held.status, 202, held.text);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(up.connections, conns, 'no TLS connection was opened for a denied or held call');
  } finally {
    grantAll(g);
  }
  // One call left on the lease, two calls at once: both may pass the policy's view, one loses the debit.
  const before = seen.length;
  const b = new Agent(g.socket);
  await b.lease({ budgets: { max_calls: 1 } });
  const rs = await Promise.all([0, 1].map((i) => b.execute('http_fetch', { url: `https://api.github.com/race-${i}` })));
  assert.deepEqual(rs.map((r) => r.status).sort(), [200, 403], rs.map((r) => r.text).join('\n'));
  assert.equal(seen.length - before, 1, 'one request reached the upstream');
  await waitFor(async () => (await up.open()) === 0, { timeoutMs: 10_000, what: 'every connection the gate opened to be closed' });
});

test('the provider starts before the grant and intent are made, but a run refused there does nothing: its request never leaves the gate', { skip }, async (t) => {
  const a = await agent();
  const before = seen.length;
  // The intent cannot be written (as when the grant was already used): 409 after the provider started.
  t.mock.method(g.ctx.ledger, 'consumeGrantAndWriteIntent', () => false, { times: 1 });
  const r = await a.execute('http_fetch', { url: 'https://api.github.com/never' });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.body.error, 'grant_consumed');
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(seen.length, before, 'the refused run sent nothing');
  const ok = await a.execute('http_fetch', { url: 'https://api.github.com/after' });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(seen.slice(before).map((x) => x.url), ['/after']);
});

test('github_create_issue: held for approval, approved by the operator, sent with the injected token; the token is nowhere in the output, receipt or ledger', { skip }, async () => {
  const before = seen.length;
  const a = await agent(g.agentSocket);
  const held = await a.execute('github_create_issue', { owner: 'octo', repo: 'demo', title: 'Found a bug', body: 'Steps: ...', labels: ['bug'] });
  assert.equal(held.status, 202, held.text);
  assert.equal(seen.length, before, 'nothing is sent before the approval');
  const ap = await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  assert.equal(ap.body.http_status, 200, JSON.stringify(ap.body));
  const got = seen.slice(before);
  assert.equal(got.length, 1);
  assert.equal(got[0].method, 'POST');
  assert.equal(got[0].url, '/repos/octo/demo/issues');
  assert.equal(got[0].headers.authorization, `Bearer ${TOKEN}`);
  assert.equal(got[0].headers['x-github-api-version'], '2022-11-28');
  assert.deepEqual(JSON.parse(got[0].body), { title: 'Found a bug', body: 'Steps: ...', labels: ['bug'] });
  const result = ap.body.result;
  assert.equal(result.verification.outcome, 'verified');
  assert.equal(result.output.status, 201);
  assert.equal(result.output.body.number, 42);
  // The upstream echoed the token back: the host redacted it before the provider saw it.
  assert.ok(!JSON.stringify(result).includes(TOKEN), 'the token reached the output');
  const receipt = receiptOf(result);
  assert.ok(!JSON.stringify(receipt).includes(TOKEN));
  const ledgerText = g.db.prepare('SELECT group_concat(event_json) FROM audit_events').pluck().get();
  assert.ok(!ledgerText.includes(TOKEN), 'the token is in the ledger');
});

test('slack_notify_channel posts the message with the bot token', { skip }, async () => {
  const before = seen.length;
  const a = await agent();
  const r = await a.execute('slack_notify_channel', { channel: 'C01234567', message: 'deploy done' });
  assert.equal(r.status, 200, r.text);
  const got = seen.slice(before);
  assert.equal(got.length, 1);
  assert.equal(got[0].url, '/api/chat.postMessage');
  assert.equal(got[0].headers.authorization, `Bearer ${SLACK}`);
  assert.deepEqual(JSON.parse(got[0].body), { channel: 'C01234567', text: 'deploy done' });
  assert.equal(r.body.verification.outcome, 'verified');
});

test('fs_read and fs_write work under the root; the host-observed hashes verify the result', { skip }, async () => {
  const a = await agent();
  const read = await a.execute('fs_read', { path: 'src/hello.txt' });
  assert.equal(read.status, 200, read.text);
  assert.equal(Buffer.from(read.body.output.content_base64, 'base64').toString(), 'hello, file\n');
  assert.equal(read.body.output.sha256, `sha256:${sha256('hello, file\n')}`);
  assert.equal(read.body.verification.outcome, 'verified');
  const rr = receiptOf(read.body);
  assert.deepEqual(rr.effect_evidence.map((e) => [e.kind, e.op, e.path]), [['fs', 'read', 'src/hello.txt']]);

  const content = 'written by the gate\n';
  const w = await a.execute('fs_write', { path: 'src/new.txt', content_base64: Buffer.from(content).toString('base64'), mode: 'create' });
  assert.equal(w.status, 200, w.text);
  assert.equal(readFileSync(path.join(root, 'src', 'new.txt'), 'utf8'), content);
  assert.equal(w.body.verification.outcome, 'verified');
  assert.equal(receiptOf(w.body).effect_evidence.at(-1).sha256_after, sha256(content));
});

test('fs actions refuse what their globs deny and anything outside the root; nothing is read or written', { skip }, async () => {
  const a = await agent();
  for (const p of ['.env', '../state/ledger.sqlite3', '/etc/passwd', 'src/../.env']) {
    const r = await a.execute('fs_read', { path: p });
    assert.notEqual(r.status, 200, `${p}: ${r.text}`);
    assert.ok(!JSON.stringify(r.body).includes('SECRET=1'), `${p}: the content leaked`);
  }
  const w = await a.execute('fs_write', { path: 'package.json', content_base64: Buffer.from('{}').toString('base64'), mode: 'create' });
  assert.notEqual(w.status, 200, w.text);
  assert.equal(existsSync(path.join(root, 'package.json')), false);
});

test('the age key of [secrets] under the fs root is never read, overwritten or deleted through fs actions; the file beside it is', { skip }, async () => {
  const a = await agent();
  const ok = await a.execute('fs_read', { path: 'docs/keys/readme.txt' });
  assert.equal(ok.status, 200, ok.text);
  const r = await a.execute('fs_read', { path: 'docs/keys/age-key.txt' });
  assert.notEqual(r.status, 200, r.text);
  assert.match(r.text, /path_denied/);
  assert.ok(!r.text.includes(AGE_KEY), 'the key leaked');
  const w = await a.execute('fs_write', { path: 'docs/keys/age-key.txt', content_base64: Buffer.from('AGE-SECRET-KEY-1MINE').toString('base64'), mode: 'overwrite' });
  assert.notEqual(w.status, 200, w.text);
  assert.equal(readFileSync(path.join(root, 'docs', 'keys', 'age-key.txt'), 'utf8'), `${AGE_KEY}\n`);
});

test("a gate's fs host never serves its own state directory, even from a root that holds it (the provider hosts as the gate makes them)", { skip }, async () => {
  // The gate's state directory is dir/state: a root of dir holds it.
  const hosts = callHosts({ ...g.ctx.providerHosts, fs: { root: dir, principals: new Map(), actions: new Map() } }, g.ctx.registry.get('fs_list').manifest, 'tester');
  assert.deepEqual((await hosts.fs.list('.')).map((e) => e.name).sort(), ['state', 'workspace']);
  for (const p of ['state', 'state/keys']) {
    await assert.rejects(hosts.fs.list(p), (e) => e.code === 'path_denied' && /latchgate's state directory \(ledger, keys\)/.test(e.message), p);
  }
  // Nor latchgate's installation: a root that holds it cannot have its code rewritten.
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  const above = callHosts({ ...g.ctx.providerHosts, fs: { root: path.dirname(repo), principals: new Map(), actions: new Map() } }, g.ctx.registry.get('fs_list').manifest, 'tester');
  await assert.rejects(above.fs.list(`${path.basename(repo)}/dist`), (e) => e.code === 'path_denied' && /latchgate's installation/.test(e.message));
  // Nor, though it reads them, where the host runs latchgate's code from: Node, its global folders, the node_modules Node searches.
  const install = installProtectedDirs();
  assert.ok(install.some((d) => /Node\.js installation/.test(d.what)), JSON.stringify(install));
  for (const d of install) assert.ok(g.ctx.providerHosts.protectedDirs.some((p) => p.path === d.path && p.readable === true), `${d.path} (${d.what}) is not protected by the gate's fs host`);
});

test('fs_list lists a directory without the denied names; fs_delete waits for approval, then deletes and records the hash of what it deleted', { skip }, async () => {
  writeFileSync(path.join(root, 'src', 'old.txt'), 'old\n');
  writeFileSync(path.join(root, 'src', '.env'), 'SECRET=2\n');
  const a = await agent(g.agentSocket);
  const list = await a.execute('fs_list', { path: 'src' });
  assert.equal(list.status, 200, list.text);
  const names = list.body.output.entries.map((e) => e.name);
  assert.ok(names.includes('old.txt') && names.includes('hello.txt'), names.join(','));
  assert.ok(!names.includes('.env'), 'a denied name is listed');

  const held = await a.execute('fs_delete', { path: 'src/old.txt' });
  assert.equal(held.status, 202, held.text);
  assert.equal(existsSync(path.join(root, 'src', 'old.txt')), true, 'deleted before the approval');
  const ap = await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  assert.equal(ap.body.http_status, 200, JSON.stringify(ap.body.result));
  assert.equal(existsSync(path.join(root, 'src', 'old.txt')), false);
  const receipt = receiptOf(ap.body.result);
  assert.deepEqual(receipt.effect_evidence.map((e) => [e.op, e.path, e.sha256_before]), [['delete', 'src/old.txt', sha256('old\n')]]);
});

test('github_read, github_comment_issue (approved), http_post and webhook_notify send what their templates describe', { skip }, async () => {
  const before = seen.length;
  const a = await agent(g.agentSocket);
  const read = await a.execute('github_read', { owner: 'octo', repo: 'demo', resource: 'issues' });
  assert.equal(read.status, 200, read.text);
  const held = await a.execute('github_comment_issue', { owner: 'octo', repo: 'demo', number: 42, body: 'Fixed in #43.' });
  assert.equal(held.status, 202, held.text);
  const ap = await admin(g, 'POST', `/v1/approvals/${held.body.approval_id}/approve`, {});
  assert.equal(ap.status, 200, ap.text);
  const post = await a.execute('http_post', { url: 'https://httpbin.org/post', body: { a: [1, 2] } });
  assert.equal(post.status, 200, post.text);
  const hook = await a.execute('webhook_notify', { event: 'build.finished', text: 'green', severity: 'info' });
  assert.equal(hook.status, 200, hook.text);
  const got = seen.slice(before).map((s) => [s.method, s.headers.host, s.url, s.headers.authorization ?? null, s.body]);
  assert.deepEqual(got, [
    ['GET', 'api.github.com', '/repos/octo/demo/issues', `Bearer ${TOKEN}`, ''],
    ['POST', 'api.github.com', '/repos/octo/demo/issues/42/comments', `Bearer ${TOKEN}`, JSON.stringify({ body: 'Fixed in #43.' })],
    ['POST', 'httpbin.org', '/post', null, JSON.stringify({ a: [1, 2] })],
    ['POST', 'hooks.example.com', '/latchgate/build.finished', `Bearer ${HOOK}`, JSON.stringify({ event: 'build.finished', text: 'green', severity: 'info' })],
  ]);
  for (const r of [read.body, ap.body.result, post.body, hook.body]) receiptOf(r);
});

test('the gate compiled neither built-in: both ran from the installation\'s precompiled entries, none went into its own cache', { skip }, () => {
  const digests = BUILTIN_PROVIDERS.map((n) => builtinProvider(n).digest.slice('sha256:'.length));
  for (const d of digests) assert.ok(existsSync(path.join(PREBUILT_DIR, d, 'meta.json')), `${d} is precompiled (npm run build does it)`);
  const own = path.join(g.stateDir, 'provider-cache');
  const cached = existsSync(own) ? readdirSync(own) : [];
  assert.deepEqual(cached.filter((e) => digests.includes(e)), [], 'a built-in was compiled again');
  // The calls above ran both: an http action and an fs one answered.
  assert.ok(seen.length > 0);
});
