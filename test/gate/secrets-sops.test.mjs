// The gate's SOPS store end to end, with files written by `latchgate secrets`.
// `latchgate up` does not start with a secrets file it cannot use (the file
// [secrets] sops_file names missing, the default file altered, the wrong age
// key): it exits as other start-up errors do, naming the file and the fix.
// A running gate takes a value changed with `latchgate secrets set` at the
// next call (the file's stat changed) and after `latchgate reload`; a file
// that stops decrypting fails closed (503 secrets_unavailable, nothing
// connected), and LATCHGATE_SECRET_* does not stand in for it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent } from '../helpers/gate.mjs';
import { leaks, secretsHome, startUp } from '../helpers/secrets-gate.mjs';
import { NO_OPENSSL, tlsUpstream } from '../helpers/tls-upstream.mjs';

const skip = NO_OPENSSL;
const value = () => `sk-${randomBytes(12).toString('hex')}`;

/** The file with one byte of PROBE_TOKEN's ciphertext changed (still valid base64). */
function tamper(file) {
  const text = readFileSync(file, 'utf8');
  const out = text.replace(/^(PROBE_TOKEN: ENC\[AES256_GCM,data:)(.)/m, (_, head, c) => head + (c === 'A' ? 'B' : 'A'));
  assert.notEqual(out, text, 'nothing to tamper with');
  writeFileSync(file, out);
}

/** up's exit and output; a gate that started is stopped and the test fails. */
async function refusedStart(h) {
  const r = await startUp(h);
  if (r.info) {
    await r.stop();
    assert.fail(`latchgate up started: ${JSON.stringify(r.info)}`);
  }
  return r;
}

let upstream;
const homes = [];
before(async () => {
  if (skip) return;
  upstream = await tlsUpstream(['probe.example.com'], (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
after(() => {
  upstream?.close();
  for (const h of homes) h.remove();
});

function home(opts) {
  const h = secretsHome(upstream, opts);
  homes.push(h);
  return h;
}

describe('latchgate up does not start with a secrets file it cannot use', { skip }, () => {
  test('the file [secrets] sops_file names does not exist: exit 125, the file and the fix named', async () => {
    const h = home({ secretsToml: ['sops_file = "missing.enc.yaml"'] });
    // The age key is there (beside the default file): the file named is what is missing.
    assert.equal(h.lg(['secrets', 'init', '--file', h.sopsFile]).status, 0);
    const r = await refusedStart(h);
    assert.equal(r.exitCode, 125, r.out.stderr);
    assert.match(r.out.stderr, /latchgate up does not start: the file \[secrets\] sops_file names cannot be used \(file_unreadable\)/);
    assert.ok(r.out.stderr.includes(path.join(h.cfgDir, 'missing.enc.yaml')), r.out.stderr);
    assert.match(r.out.stderr, /latchgate secrets init/);
    assert.match(r.out.stderr, /remove \[secrets\] sops_file/);
  });

  test('the default file, altered after it was written: exit 125 (value_auth_failed), nothing of it in the output', async () => {
    const h = home();
    assert.equal(h.lg(['secrets', 'init']).status, 0);
    const secret = value();
    h.setSecret('PROBE_TOKEN', secret);
    tamper(h.sopsFile);
    const r = await refusedStart(h);
    assert.equal(r.exitCode, 125, r.out.stderr);
    assert.match(r.out.stderr, /the default secrets file \(it exists\) cannot be used \(value_auth_failed\)/);
    assert.ok(r.out.stderr.includes(h.sopsFile), r.out.stderr);
    assert.match(r.out.stderr, new RegExp(`move ${h.sopsFile} away`));
    assert.deepEqual(leaks(r.out.stdout + r.out.stderr, secret), []);
  });

  test('the wrong age key: exit 125 (no_matching_identity), the file named', async () => {
    const h = home({ secretsToml: ['sops_file = "secrets.enc.yaml"', 'age_key_file = "other-key.txt"'] });
    // The file is encrypted to age-key.txt; other-key.txt opens only other.enc.yaml.
    assert.equal(h.lg(['secrets', 'init', '--age-key-file', h.ageKeyFile]).status, 0);
    h.setSecret('PROBE_TOKEN', value(), ['--age-key-file', h.ageKeyFile]);
    assert.equal(h.lg(['secrets', 'init', '--file', path.join(h.cfgDir, 'other.enc.yaml'), '--age-key-file', path.join(h.cfgDir, 'other-key.txt')]).status, 0);
    const r = await refusedStart(h);
    assert.equal(r.exitCode, 125, r.out.stderr);
    assert.match(r.out.stderr, /\(no_matching_identity\)/);
    assert.ok(r.out.stderr.includes(h.sopsFile), r.out.stderr);
  });

  test('the same file with its own key configured: up starts and names the file it reads', async () => {
    const h = home({ secretsToml: ['sops_file = "secrets.enc.yaml"', 'age_key_file = "age-key.txt"'] });
    assert.equal(h.lg(['secrets', 'init']).status, 0);
    h.setSecret('PROBE_TOKEN', value());
    const r = await startUp(h);
    try {
      assert.ok(r.info, r.out.stderr);
      assert.equal(r.info.secrets, `the SOPS file ${h.sopsFile} (1 secret), then LATCHGATE_SECRET_* in the environment`);
    } finally {
      await r.stop?.();
    }
  });
});

describe('a running gate and a secrets file that changes', { skip }, () => {
  let h;
  let up;
  let agent;
  /** Shadowed by the file, and never used in its place when the file fails. */
  const DECOY = value();
  let seenTokens = [];

  const call = async () => {
    const n = upstream.seen.length;
    const r = await agent.execute('secret_probe', { mode: 'ok', text: 'x' });
    const sent = upstream.seen.slice(n).map((s) => s.headers.authorization);
    seenTokens.push(...sent);
    return { r, sent };
  };

  before(async () => {
    h = home();
    assert.equal(h.lg(['secrets', 'init']).status, 0);
    h.setSecret('PROBE_TOKEN', 'first-value-0001');
    up = await startUp(h, { LATCHGATE_SECRET_PROBE_TOKEN: DECOY });
    assert.ok(up.info, up.out.stderr);
    assert.equal(h.lg(['policy', 'grant', h.user, 'secret_probe']).status, 0);
    agent = new Agent(up.info.client_socket);
    await agent.lease();
  });
  after(async () => {
    await up?.stop?.();
    assert.ok(!seenTokens.includes(`Bearer ${DECOY}`), 'the environment variable the file shadows was sent');
  });

  test('a value changed with latchgate secrets set is used at the next call, without a reload', async () => {
    const first = await call();
    assert.equal(first.r.status, 200, first.r.text);
    assert.deepEqual(first.sent, ['Bearer first-value-0001']);
    h.setSecret('PROBE_TOKEN', 'second-value-002');
    const second = await call();
    assert.equal(second.r.status, 200, second.r.text);
    assert.deepEqual(second.sent, ['Bearer second-value-002']);
    // The shadowed variable is named once on stderr, its value never.
    assert.match(up.out.stderr, /secret PROBE_TOKEN is set both in .* and as LATCHGATE_SECRET_PROBE_TOKEN; the file's value is used/);
    assert.deepEqual(leaks(up.out.stderr, DECOY), []);
  });

  test('latchgate reload reads the file now and says how many secrets it holds; the next call uses its value', async () => {
    h.setSecret('PROBE_TOKEN', 'third-value-0003');
    const r = h.lg(['reload']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `reloaded: ${h.sopsFile} holds 1 secret; running gates read it again at the next use`);
    const next = await call();
    assert.equal(next.r.status, 200, next.r.text);
    assert.deepEqual(next.sent, ['Bearer third-value-0003']);
    const events = JSON.parse(h.lg(['audit', '--json', '-l', '50']).stdout).filter((e) => e.event_type === 'admin_secrets_reloaded');
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.deepEqual(leaks(JSON.stringify(events), 'third-value-0003'), []);
  });

  test('a file that stops decrypting fails closed: reload refused, calls 503 secrets_unavailable with nothing connected, no fallback to the environment; fixed, it serves again', async () => {
    const good = readFileSync(h.sopsFile);
    tamper(h.sopsFile);
    const r = h.lg(['reload']);
    assert.notEqual(r.status, 0, r.stdout);
    assert.match(r.stderr, /secrets_unavailable/);
    assert.ok(r.stderr.includes(h.sopsFile), r.stderr);
    const conns = upstream.connections;
    const failed = await call();
    assert.equal(failed.r.status, 503, failed.r.text);
    assert.equal(failed.r.body.error, 'secrets_unavailable');
    assert.match(failed.r.body.message, /PROBE_TOKEN/);
    assert.deepEqual(failed.sent, []);
    assert.equal(upstream.connections, conns, 'a connection was opened');
    writeFileSync(h.sopsFile, good);
    const back = await call();
    assert.equal(back.r.status, 200, back.r.text);
    assert.deepEqual(back.sent, ['Bearer third-value-0003']);
  });
});
