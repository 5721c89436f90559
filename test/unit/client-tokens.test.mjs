// Client tokens (src/gate/tokens.ts) and the TCP listener's admission
// (src/gate/transport.ts): a forged, guessed, revoked or expired token is
// refused; a Host that does not name the listener and a foreign Origin are
// refused before the token is looked at; what a token may name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../../dist/ledger/db.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { ClientTokens, parseTokenRequest } from '../../dist/gate/tokens.js';
import { tcpHosts, tokenIdentity } from '../../dist/gate/transport.js';

/** A token store on a ledger whose every change records the table's digest, as the admin acts do. */
function store() {
  const db = openDb(':memory:');
  const ledger = new Ledger(db).migrate();
  const t = new ClientTokens(db);
  t.migrate();
  const recorded = (event_type, fn) => (...args) => {
    const r = fn(...args);
    const id = r.record?.token_id ?? r.token_id;
    ledger.append({ event_type, decision: 'allow', operator: { name: 'op' }, subject: { principal: 'operator:op' }, details: { token_id: id, principal: 'agent', ...(event_type === 'client_token_created' ? { scopes: [], expires_at: null } : {}), tokens_digest: t.digest() } });
    return r;
  };
  return Object.assign(Object.create(t), { create: recorded('client_token_created', t.create.bind(t)), revoke: recorded('client_token_revoked', t.revoke.bind(t)), db });
}

const thrown = (fn) => {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
};
const code = (fn) => thrown(fn)?.code ?? 'ok';

test('a token authenticates as its principal; a forged secret for a real id, a wrong prefix, a revoked or expired one does not', () => {
  const s = store();
  const { token, record } = s.create({ principal: 'agent', scopes: ['tools:call'], expiresInSeconds: 3600 }, 'op');
  assert.equal(s.authenticate(token).principal, 'agent');
  const forged = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
  assert.equal(code(() => s.authenticate(forged)), 'identity_unauthenticated', 'the id alone is not enough');
  assert.equal(code(() => s.authenticate(token.replace('lgt_', 'lgx_'))), 'identity_unauthenticated');
  assert.equal(code(() => s.authenticate(`${token} `)), 'identity_unauthenticated');
  assert.equal(code(() => s.authenticate(token, new Date(Date.now() + 3601e3))), 'token_expired');
  s.revoke(record.token_id, 'op');
  assert.equal(code(() => s.authenticate(token)), 'token_revoked');
  assert.equal(code(() => s.revoke(record.token_id, 'op')), 'token_already_revoked');
  assert.equal(code(() => s.revoke('ffffffffffffffff', 'op')), 'token_not_found');
  assert.equal(code(() => s.revoke("x' OR 1=1 --", 'op')), 'invalid_request');
});

test('what a token may name: a configured principal within its scopes, a new name with the scopes given, never an operator', () => {
  const configured = new Map([['alice', ['tools:call', 'audit:read']]]);
  assert.deepEqual(parseTokenRequest({ principal: 'alice' }, configured), { principal: 'alice', scopes: ['tools:call', 'audit:read'], expiresInSeconds: 30 * 86400 });
  assert.deepEqual(parseTokenRequest({ principal: 'alice', scopes: ['audit:read'], expires_in_seconds: null }, configured).scopes, ['audit:read']);
  assert.deepEqual(parseTokenRequest({ principal: 'bot' }, configured).scopes, ['tools:call']);
  assert.deepEqual(parseTokenRequest({ principal: 'bot', scopes: ['ci:deploy'] }, configured).scopes, ['ci:deploy']);
  for (const bad of [
    { principal: 'alice', scopes: ['ci:deploy'] },
    { principal: 'operator:root' },
    { principal: '' },
    { principal: 'a\u001bb' },
    { principal: 'bot', scopes: [] },
    { principal: 'bot', expires_in_seconds: 5 },
    { principal: 'bot', operator: true },
    null,
  ]) {
    assert.equal(code(() => parseTokenRequest(bad, configured)), 'invalid_request', JSON.stringify(bad));
  }
});

test('the TCP listener: the Host must name it and an Origin must be listed, before any token is looked at', () => {
  const s = store();
  const { token } = s.create({ principal: 'agent', scopes: ['tools:call'], expiresInSeconds: null }, 'op');
  const hosts = tcpHosts({ host: '127.0.0.1', port: 8080 }, ['Gate.Internal:8080']);
  assert.deepEqual([...hosts].sort(), ['127.0.0.1:8080', '[::1]:8080', 'gate.internal:8080', 'localhost:8080']);
  const identify = tokenIdentity({ hosts, origins: new Set(['https://console.internal']), tokens: s });
  const req = (headers) => ({ headers });
  assert.deepEqual(identify(req({ host: 'localhost:8080', 'latchgate-token': token })), { principal: 'agent', scopes: ['tools:call'], token_id: token.split('_')[1], transport: 'http' });
  assert.equal(code(() => identify(req({ host: 'evil.example:8080', 'latchgate-token': token }))), 'host_not_allowed');
  assert.equal(code(() => identify(req({ host: '127.0.0.1:8081', 'latchgate-token': token }))), 'host_not_allowed');
  assert.equal(code(() => identify(req({ 'latchgate-token': token }))), 'host_not_allowed', 'no Host at all (HTTP/1.0)');
  assert.equal(code(() => identify(req({ host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8080', 'latchgate-token': token }))), 'origin_not_allowed');
  assert.equal(code(() => identify(req({ host: '127.0.0.1:8080', origin: 'https://console.internal', 'latchgate-token': token }))), 'ok');
  assert.equal(code(() => identify(req({ host: '127.0.0.1:8080' }))), 'identity_unauthenticated');
  assert.match(thrown(() => identify(req({ host: '127.0.0.1:8080', authorization: `Bearer ${token}` }))).message, /not in Authorization/);
  assert.equal(code(() => identify({ raw: {} })), 'host_not_allowed', 'a connection without a request (malformed HTTP) identifies no one');
});

test('a client_tokens row edited outside latchgate (a revocation undone, a token re-pointed or minted) stops every token: state_tampered', () => {
  const s = store();
  const { token, record } = s.create({ principal: 'agent', scopes: ['tools:call'], expiresInSeconds: null }, 'op');
  const other = s.create({ principal: 'agent', scopes: ['tools:call'], expiresInSeconds: null }, 'op');
  s.revoke(record.token_id, 'op');
  assert.equal(code(() => s.authenticate(token)), 'token_revoked');
  assert.equal(s.authenticate(other.token).principal, 'agent');
  s.db.prepare('UPDATE client_tokens SET revoked_at = NULL, revoked_by = NULL WHERE token_id = ?').run(record.token_id);
  const e = thrown(() => s.authenticate(token));
  assert.equal(e?.code, 'state_tampered');
  assert.match(e.message, /client_tokens has digest sha256:[0-9a-f]{64}, but the ledger's chain recorded sha256:[0-9a-f]{64}.*Refusing every client token/);
  assert.equal(code(() => s.authenticate(other.token)), 'state_tampered', 'every token, not just the edited one');
});
