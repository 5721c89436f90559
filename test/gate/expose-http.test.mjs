// `latchgate up --expose-http`: a caller on the loopback TCP port has no peer
// uid, so it is identified only by a client token an operator issued
// (`latchgate tokens create`), never as the gate's owner. Every attack is
// made from another uid (a system user this setup creates), as any local
// user or a browser page rebinding its name to 127.0.0.1 would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { request } from '../helpers/gate.mjs';
import { testUser } from '../helpers/sandbox.mjs';

const isRoot = process.getuid() === 0;
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const CLIENT = readFileSync(new URL('../helpers/tcp-client.mjs', import.meta.url), 'utf8');
const manifests = fileURLToPath(new URL('../fixtures/cli-manifests', import.meta.url));
const HTU = 'http://latchgate.local'; // the default [gate] public_base_url: what DPoP proofs name on every transport
const PORT = 40000 + (process.pid % 20000);
const OWNER = 'gate-owner';
const AGENT = 'tcp-agent';

const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-expose-'));
const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
let up;
let info;
let other;

function lg(...args) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) };
}

/** Runs the TCP client (test/helpers/tcp-client.mjs) as the other uid; resolves {results, session}. */
function asOther(args) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CLIENT, JSON.stringify({ port: PORT, htuBase: HTU, ...args })], { uid: other.uid, gid: other.gid, cwd: '/', encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const newToken = (principal, ...flags) => {
  const r = lg('tokens', 'create', '--principal', principal, ...flags, '--json');
  assert.equal(r.code, 0, r.err);
  return r.json();
};

const audit = (...args) => lg('audit', '--json', '--limit', '1000', ...args).json();

before(async () => {
  if (!isRoot) return;
  other = testUser();
  const cfgDir = path.join(home, 'config', 'latchgate');
  mkdirSync(cfgDir, { recursive: true });
  writeFileSync(
    path.join(cfgDir, 'latchgate.toml'),
    `[gate]\nmanifest_dirs = [${JSON.stringify(manifests)}]\nhttp_hosts = ["gate.internal:${PORT}"]\nhttp_origins = ["https://console.internal"]\n\n` +
      `[identity.principals.0]\nname = "${OWNER}"\nscopes = ["tools:call", "audit:read"]\n\n[operators.admin]\nuid = 0\n`,
  );
  chmodSync(home, 0o755);
  up = spawn(process.execPath, [CLI, 'up', '--json', '--expose-http', `127.0.0.1:${PORT}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  up.stdout.on('data', (d) => (out += d));
  up.stderr.on('data', (d) => (err += d));
  for (let i = 0; i < 2400 && !out.includes('\n') && up.exitCode === null; i++) await sleep(25); // generous: the machine may be busy
  assert.ok(out.includes('\n'), `latchgate up did not start: ${err}`);
  info = JSON.parse(out.trim());
  assert.equal(lg('policy', 'grant', AGENT, 't_noop,t_noop_high').code, 0);
  assert.equal(lg('policy', 'grant', OWNER, 't_noop').code, 0);
});

after(async () => {
  if (up) {
    up.kill('SIGTERM');
    await new Promise((r) => (up.exitCode !== null ? r() : up.once('exit', r)));
  }
  rmSync(home, { recursive: true, force: true });
});

const skip = isRoot ? undefined : 'needs root to create a system user and connect as another uid';

/** No TCP event may name the owner: the port never hands out the owner's identity. */
function assertOwnerNeverOverTcp() {
  const overTcp = audit().filter((e) => e.subject?.identity_method === 'http');
  assert.deepEqual(overTcp.filter((e) => e.subject.principal === OWNER), [], 'no event over TCP names the owner');
}

test('without a token: every request from another uid is refused 401 and recorded, as no one (never the owner)', { skip }, () => {
  const { results } = asOther({
    steps: [
      { do: 'get', path: '/v1/actions' },
      { do: 'get', path: '/healthz' },
      { do: 'lease' },
      { do: 'get', path: '/v1/actions', headers: { 'latchgate-token': 'lgt_0123456789abcdef_' + 'A'.repeat(43) } },
      { do: 'get', path: '/v1/actions', headers: { 'latchgate-token': 'owner' } },
    ],
  });
  for (const r of results) {
    assert.equal(r.status, 401, JSON.stringify(r));
    assert.equal(r.body.error, 'identity_unauthenticated');
  }
  assert.match(results[0].body.message, /LatchGate-Token: lgt_\.\.\..*latchgate tokens create/);
  assert.match(results[3].body.message, /not one this gate issued/);
  const refused = audit('--event-type', 'request_refused').filter((e) => e.error.code === 'identity_unauthenticated');
  assert.ok(refused.length >= 1, 'the refusals are recorded');
  assert.ok(refused.every((e) => e.subject.principal === 'unknown'));
  assert.deepEqual(audit('--event-type', 'lease_issued').filter((e) => e.subject.identity_method === 'http'), [], 'no lease went out over TCP');
  assertOwnerNeverOverTcp();
});

test('a valid token with a foreign Host (DNS rebinding) or a browser Origin not configured is refused 421 / 403 and recorded', { skip }, () => {
  const t = newToken(AGENT);
  const { results } = asOther({
    token: t.token,
    steps: [
      { do: 'get', path: '/v1/actions', headers: { host: `evil.example:${PORT}` } },
      { do: 'get', path: '/healthz', headers: { host: 'evil.example' } },
      { do: 'get', path: '/v1/actions', headers: { host: `127.0.0.1:${PORT + 1}` } },
      { do: 'get', path: '/v1/actions', headers: { origin: `http://evil.example:${PORT}` } },
      { do: 'get', path: '/v1/actions', headers: { origin: 'null' } },
    ],
  });
  assert.deepEqual(results.map((r) => [r.status, r.body.error]), [[421, 'host_not_allowed'], [421, 'host_not_allowed'], [421, 'host_not_allowed'], [403, 'origin_not_allowed'], [403, 'origin_not_allowed']]);
  assert.match(results[0].body.message, new RegExp(`127\\.0\\.0\\.1:${PORT}.*http_hosts`));
  const codes = audit('--event-type', 'request_refused').map((e) => e.error.code);
  assert.ok(codes.includes('host_not_allowed') && codes.includes('origin_not_allowed'), 'recorded');
  // The same token, with the names this listener answers to: admitted.
  const ok = asOther({
    token: t.token,
    steps: [
      { do: 'get', path: '/v1/actions' },
      { do: 'get', path: '/v1/actions', headers: { host: `localhost:${PORT}` } },
      { do: 'get', path: '/v1/actions', headers: { host: `[::1]:${PORT}` } },
      { do: 'get', path: '/v1/actions', headers: { host: `GATE.internal:${PORT}` } },
      { do: 'get', path: '/v1/actions', headers: { origin: 'https://console.internal' } },
    ],
  });
  assert.deepEqual(ok.results.map((r) => r.status), [200, 200, 200, 200, 200]);
  assert.ok(ok.results[0].body.actions.some((a) => a.action_id === 't_noop'));
});

test("with a valid token: lease + execute of a builtin action work over TCP, as the token's principal (not the owner)", { skip }, () => {
  const t = newToken(AGENT);
  const { results, session } = asOther({ token: t.token, steps: [{ do: 'lease' }, { do: 'execute', action: 't_noop', body: { n: 1 } }] });
  const [lease, exec] = results;
  assert.equal(lease.status, 201, JSON.stringify(lease));
  assert.equal(exec.status, 200, JSON.stringify(exec));
  assert.ok(exec.body.receipt_id);
  const claims = JSON.parse(Buffer.from(lease.body.lease_jwt.split('.')[1], 'base64url'));
  assert.equal(claims.sub, AGENT);
  assert.equal(claims.tok, t.token_id);
  const issued = audit('--event-type', 'lease_issued', '--session-id', lease.body.session_id);
  assert.equal(issued.length, 1);
  assert.equal(issued[0].subject.principal, AGENT);
  assert.equal(issued[0].details.token_id, t.token_id);
  const call = audit('--event-type', 'action_call', '--session-id', lease.body.session_id);
  assert.equal(call.length, 1);
  assert.equal(call[0].decision, 'allow');
  assert.equal(call[0].subject.principal, AGENT);
  assert.equal(call[0].subject.identity_method, 'http');
  assert.equal(call[0].execution.receipt_id, exec.body.receipt_id);
  // The receipt is the token caller's to read; operators' routes are not on this port, token or not.
  const again = asOther({ token: t.token, session, steps: [{ do: 'signed', method: 'GET', path: `/v1/receipts/${exec.body.receipt_id}` }, { do: 'get', path: '/v1/admin/epoch' }] }).results;
  assert.equal(again[0].status, 200, JSON.stringify(again[0]));
  assert.equal(again[0].body.receipt_id, exec.body.receipt_id);
  assert.deepEqual([again[1].status, again[1].body.error], [404, 'route_not_found']);
  assertOwnerNeverOverTcp();
});

test('a revoked token is refused on its next request, and the leases issued through it stop working (even with another token of the same principal)', { skip }, () => {
  const t = newToken(AGENT);
  const spare = newToken(AGENT);
  const first = asOther({ token: t.token, steps: [{ do: 'lease' }, { do: 'execute', action: 't_noop', body: { n: 2 } }] });
  assert.deepEqual(first.results.map((r) => r.status), [201, 200]);
  // An approval requested under it, pending when the token goes.
  const held = asOther({ token: t.token, session: first.session, steps: [{ do: 'execute', action: 't_noop_high', body: { n: 3 } }] }).results[0];
  assert.equal(held.status, 202, JSON.stringify(held));

  const rev = lg('tokens', 'revoke', t.token_id, '--json');
  assert.equal(rev.code, 0, rev.err);
  assert.ok(rev.json().revoked_at);

  const after = asOther({ token: t.token, session: first.session, steps: [{ do: 'get', path: '/v1/actions' }, { do: 'execute', action: 't_noop', body: { n: 4 } }, { do: 'lease' }] });
  assert.deepEqual(after.results.map((r) => [r.status, r.body.error]), [[401, 'token_revoked'], [401, 'token_revoked'], [401, 'token_revoked']]);
  // The lease under the revoked token, sent with a token that still stands: refused too.
  const swapped = asOther({ token: spare.token, session: first.session, steps: [{ do: 'execute', action: 't_noop', body: { n: 5 } }, { do: 'lease' }, { do: 'execute', action: 't_noop', body: { n: 6 } }] });
  assert.deepEqual(swapped.results.map((r) => [r.status, r.body.error ?? 'ok']), [[403, 'identity_forbidden'], [201, 'ok'], [200, 'ok']], 'the spare token gets its own lease');
  assert.match(swapped.results[0].body.message, new RegExp(`client token ${t.token_id}`));
  // The approval requested under the revoked token's lease does not run.
  const approve = lg('approvals', 'approve', held.body.approval_id);
  assert.notEqual(approve.code, 0);
  assert.match(approve.err, /approval_revoked: .*client token/);
  const revoked = audit('--event-type', 'approval_revoked').filter((e) => e.approval.approval_id === held.body.approval_id);
  assert.equal(revoked.length, 1);
  assert.equal(revoked[0].details.cause, 'token_revoked');
  const ev = audit('--event-type', 'client_token_revoked').filter((e) => e.details.token_id === t.token_id);
  assert.equal(ev.length, 1);
  assert.equal(ev[0].operator.name, 'admin');
  assert.equal(ev[0].details.principal, AGENT);
});

test('a token row edited in the table (here its expiry) stops every token until it is put back; a lease from a peer uid is not usable over TCP', { skip }, async () => {
  // Expiry itself is unit-tested (test/unit/client-tokens.test.mjs); a row changed outside latchgate is tampering.
  const t = newToken(AGENT, '--expires', '60s');
  const db = new Database(path.join(info.state_dir, 'ledger.sqlite3'));
  db.prepare('UPDATE client_tokens SET expires_at = ? WHERE token_id = ?').run(new Date(Date.now() + 365 * 86400e3).toISOString(), t.token_id);
  const r = asOther({ token: t.token, steps: [{ do: 'get', path: '/v1/actions' }] }).results[0];
  assert.deepEqual([r.status, r.body.error], [503, 'state_tampered']);
  db.prepare('UPDATE client_tokens SET expires_at = ? WHERE token_id = ?').run(t.expires_at, t.token_id);
  db.close();
  const back = asOther({ token: t.token, steps: [{ do: 'get', path: '/v1/actions' }] }).results[0];
  assert.equal(back.status, 200);
  // A token for the owner's own configured name (an operator's explicit act) does not
  // make the owner's Unix-socket lease usable over TCP: that lease names no token.
  const ownerToken = newToken(OWNER);
  assert.deepEqual(ownerToken.scopes, ['tools:call', 'audit:read'], 'a configured principal keeps its configured scopes');
  assert.match(lg('tokens', 'create', '--principal', OWNER, '--scopes', 'tools:call,x-y:z').err, /beyond what the configured principal/);
  const { privateKey } = generateKeyPairSync('ed25519');
  const pub = createPublicKey(privateKey).export({ format: 'jwk' });
  const unixLease = await request(info.client_socket, 'POST', '/v1/leases', { body: { scopes: ['tools:call'], dpop_jwk: { kty: pub.kty, crv: pub.crv, x: pub.x } } });
  assert.equal(unixLease.status, 201, unixLease.text);
  const session = { lease_jwt: unixLease.body.lease_jwt, jwk: privateKey.export({ format: 'jwk' }) };
  const reused = asOther({ token: ownerToken.token, session, steps: [{ do: 'execute', action: 't_noop', body: { n: 7 } }] }).results[0];
  assert.deepEqual([reused.status, reused.body.error], [403, 'identity_forbidden']);
  assert.match(reused.body.message, /not issued through a client token/);
});

test('the stored token is not the secret: only its SHA-256 is in the database, and no event carries it', { skip }, () => {
  const t = newToken('hash-check', '--scopes', 'tools:call');
  assert.match(t.token, /^lgt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  // The random part whole: it may hold underscores itself (base64url).
  const secret = t.token.slice('lgt_'.length + 17);
  assert.equal(secret.length, 43);
  const dbPath = path.join(info.state_dir, 'ledger.sqlite3');
  const db = new Database(dbPath, { readonly: true });
  const row = db.prepare('SELECT * FROM client_tokens WHERE token_id = ?').get(t.token_id);
  db.close();
  assert.ok(row);
  assert.ok(!JSON.stringify(Object.values(row).map(String)).includes(t.token), 'the row does not hold the secret');
  assert.ok(!Object.values(row).map(String).some((v) => v.includes(secret)), 'nor its random part');
  assert.deepEqual(Buffer.from(row.secret_sha256), createHash('sha256').update(t.token).digest());
  // The file bytes (database and WAL): the secret appears nowhere.
  for (const f of [dbPath, `${dbPath}-wal`]) {
    let bytes;
    try {
      bytes = readFileSync(f);
    } catch {
      continue;
    }
    assert.equal(bytes.indexOf(secret), -1, `${f} does not hold the secret`);
  }
  assert.ok(!JSON.stringify(audit()).includes(secret), 'no event carries it');
  assert.ok(!lg('tokens', 'list', '--json').out.includes(secret), 'list never shows it');
});

test('tokens create/list/revoke with --json, and their refusals', { skip }, () => {
  const t = newToken('cli-agent', '--scopes', 'tools:call,audit:read', '--expires', '12h');
  assert.equal(t.principal, 'cli-agent');
  assert.deepEqual(t.scopes, ['tools:call', 'audit:read']);
  const hours = (Date.parse(t.expires_at) - Date.parse(t.created_at)) / 3600e3;
  assert.equal(hours, 12);
  assert.equal(t.created_by, 'admin');
  assert.equal(newToken('forever', '--expires', 'never').expires_at, null);
  const list = lg('tokens', 'list', '--json').json();
  const mine = list.find((x) => x.token_id === t.token_id);
  assert.deepEqual(Object.keys(mine).sort(), ['created_at', 'created_by', 'expires_at', 'principal', 'revoked_at', 'revoked_by', 'scopes', 'token_id']);
  assert.ok(list.every((x) => !('token' in x) && !('secret_sha256' in x)));
  const table = lg('tokens', 'list').out.split('\n');
  assert.match(table[0], /^TOKEN_ID +PRINCIPAL +SCOPES +STATE$/);
  assert.ok(table.some((l) => new RegExp(`^${t.token_id} +cli-agent +tools:call, audit:read +expires `).test(l)), table.join('\n'));
  const created = audit('--event-type', 'client_token_created').find((e) => e.details.token_id === t.token_id);
  assert.match(created.details.tokens_digest, /^sha256:[0-9a-f]{64}$/);
  assert.deepEqual(created.details, { token_id: t.token_id, principal: 'cli-agent', scopes: ['tools:call', 'audit:read'], expires_at: t.expires_at, tokens_digest: created.details.tokens_digest });
  assert.equal(created.operator.name, 'admin');

  const rev = lg('tokens', 'revoke', t.token_id, '--json');
  assert.equal(rev.code, 0, rev.err);
  assert.equal(rev.json().revoked_by, 'admin');
  assert.match(lg('tokens', 'revoke', t.token_id).err, /token_already_revoked/);
  assert.match(lg('tokens', 'revoke', '0000000000000000').err, /token_not_found/);
  assert.match(lg('tokens', 'create', '--principal', 'operator:admin').err, /never acts as an operator/);
  assert.match(lg('tokens', 'create', '--principal', 'x', '--expires', '3 days').err, /--expires.*30d/);
  assert.match(lg('tokens', 'create', '--principal', 'x', '--scopes', 'BAD').err, /"BAD" is not one/);
  assert.equal(lg('tokens', 'create').code, 125, 'the principal is required');
});

test('a non-operator uid cannot issue or revoke tokens, neither through the CLI nor the admin socket', { skip }, () => {
  const probe = `
    const http = require('http');
    const q = http.request({ socketPath: process.argv[1], method: 'POST', path: '/v1/admin/tokens', headers: { 'content-type': 'application/json' } }, (s) => { let t = ''; s.on('data', (d) => (t += d)); s.on('end', () => console.log(s.statusCode + ' ' + (JSON.parse(t).error || 'ok'))); });
    q.on('error', (e) => console.log('ERR ' + e.code));
    q.end(JSON.stringify({ principal: 'mine' }));`;
  chmodSync(path.join(home, 'run'), 0o755);
  chmodSync(path.dirname(info.admin_socket), 0o755);
  const r = spawnSync(process.execPath, ['-e', probe, info.admin_socket], { uid: other.uid, gid: other.gid, encoding: 'utf8' });
  assert.equal(r.stdout.trim(), '401 identity_unauthenticated', r.stderr);
  assert.ok(!lg('tokens', 'list', '--json').json().some((x) => x.principal === 'mine'));
});
