// leaseProblem: what ends a lease between a request's authentication and
// its commit (src/gate/lease-standing.ts), each cause named; a lease that
// stands passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leaseProblem } from '../../dist/gate/lease-standing.js';

const now = new Date('2026-01-01T00:00:00Z');
const exp = now.getTime() / 1000 + 600;
const tokens = (problems) => ({ problem: (id) => problems[id] });
const whose = 'the lease this call was made under';

test('a lease of the current epoch, not expired, without a token or with one that stands: no problem', () => {
  assert.equal(leaseProblem({ lease_epoch: 3, lease_expires_at: exp }, 3, now, tokens({}), whose), null);
  assert.equal(leaseProblem({ lease_epoch: 3, lease_expires_at: exp, token_id: 't1' }, 3, now, tokens({}), whose), null);
});

test('each way a lease ends is named', () => {
  assert.equal(leaseProblem({ lease_epoch: 2, lease_expires_at: exp }, 3, now, tokens({}), whose).cause, 'lease_revoked');
  const expired = leaseProblem({ lease_epoch: 3, lease_expires_at: now.getTime() / 1000 }, 3, now, tokens({}), whose);
  assert.equal(expired.cause, 'lease_expired');
  assert.match(expired.message, /^the lease this call was made under expired at 2026-01-01T00:00:00.000Z/);
  const revokedToken = leaseProblem({ lease_epoch: 3, lease_expires_at: exp, token_id: 't1' }, 3, now, tokens({ t1: { code: 'token_revoked', message: 'token t1 was revoked' } }), whose);
  assert.equal(revokedToken.cause, 'token_revoked');
  assert.match(revokedToken.message, /client token that no longer stands: token t1 was revoked/);
  assert.equal(leaseProblem({ lease_epoch: 3, lease_expires_at: exp, token_id: 't1' }, 3, now, tokens({ t1: { code: 'token_expired', message: 'expired' } }), whose).cause, 'token_expired');
  assert.equal(leaseProblem({ lease_expires_at: exp }, 3, now, tokens({}), whose).cause, 'lease_unknown');
  assert.equal(leaseProblem(undefined, 3, now, tokens({}), whose).cause, 'lease_unknown');
});
