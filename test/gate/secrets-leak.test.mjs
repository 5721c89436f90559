// A secret used through the gate never comes back out of it. A real
// `latchgate up` holds PROBE_TOKEN, once from its environment
// (LATCHGATE_SECRET_PROBE_TOKEN) and once from a SOPS file written by
// `latchgate secrets init` and `set`; the secret_probe action
// (builtin:http_api) sends it in a header and inside its JSON body to a local
// HTTPS upstream (pinned with [gate.resolve], its CA in [gate]
// extra_ca_certs), which echoes the request back: as JSON, base64, and in a
// 500 error. Afterwards the value is searched for, plain, base64 (standard
// and url), hex and JSON-escaped, in every answer the agent got, the
// receipts, the ledger's SQLite file and WAL, `latchgate audit` in every
// format, `latchgate verify`, everything the gate wrote on stdout and
// stderr, and every file left in the gate's home. A required secret without
// a value ends its run before any connection, the event naming the secret.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from '../helpers/gate.mjs';
import { leaks, secretsHome, startUp } from '../helpers/secrets-gate.mjs';
import { NO_OPENSSL, tlsUpstream } from '../helpers/tls-upstream.mjs';

const skip = NO_OPENSSL;

/** Every regular file under dir (sockets and other special files left out). */
function regularFiles(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? e.path, e.name));
}

for (const source of ['env', 'sops']) {
  describe(`the secret from ${source === 'env' ? 'the environment' : 'a SOPS file'}`, { skip }, () => {
    /** With a quote and a backslash: its JSON-escaped form differs from the plain one. */
    const SECRET = `Lg"Sec\\${randomBytes(16).toString('hex')}`;
    /** Asserts no form of SECRET is in `what` (a string or bytes). */
    const clean = (what, label) => assert.deepEqual(leaks(what, SECRET), [], `${label} holds the secret`);
    let h;
    let up;
    let upstream;
    let info;

    before(async () => {
      upstream = await tlsUpstream(['probe.example.com'], (req, res, body) => {
        const echo = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body });
        if (req.url === '/ok') {
          res.writeHead(200, { 'content-type': 'application/json', 'x-echo-auth': String(req.headers.authorization) });
          res.end(echo);
        } else if (req.url === '/fail') {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`upstream failed on this request: ${echo}`);
        } else if (req.url === '/echo-b64') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(Buffer.from(echo).toString('base64'));
        } else return false;
        return true;
      });
      h = secretsHome(upstream);
      if (source === 'sops') {
        assert.equal(h.lg(['secrets', 'init']).status, 0);
        h.setSecret('PROBE_TOKEN', SECRET);
      }
      up = await startUp(h, source === 'env' ? { LATCHGATE_SECRET_PROBE_TOKEN: SECRET } : {});
      assert.ok(up.info, `latchgate up did not start: ${up.out.stderr}`);
      info = up.info;
      // The start-up output names the sources in use, never a value.
      if (source === 'sops') assert.match(info.secrets, new RegExp(`the SOPS file ${h.sopsFile} \\(1 secret\\), then LATCHGATE_SECRET_\\*`));
      else assert.match(info.secrets, /^LATCHGATE_SECRET_\* in the environment \(no SOPS file: .*secrets\.enc\.yaml does not exist\)$/);
      assert.equal(h.lg(['policy', 'grant', h.user, 'secret_probe,secret_required_probe']).status, 0);
    });

    after(async () => {
      await up?.stop?.();
      upstream?.close();
      h?.remove();
    });

    test('a secret sent in a header and a JSON body reaches the upstream, and appears nowhere the gate writes or answers', async () => {
      const a = new Agent(info.client_socket);
      await a.lease();
      const seen = upstream.seen.length;
      const ok = await a.execute('secret_probe', { mode: 'ok', text: 'hello' });
      assert.equal(ok.status, 200, ok.text);
      // The upstream got the value, in the header and inside the JSON string, intact.
      const got = upstream.seen[seen];
      assert.equal(got.headers.authorization, `Bearer ${SECRET}`);
      assert.deepEqual(JSON.parse(got.body), { text: 'hello', auth: `token=${SECRET}` });
      // Its echo (the value in a header, in JSON, escaped) came back redacted.
      assert.match(ok.text, /\[redacted\]/);
      clean(ok.text, 'the answer to the agent');
      const b64 = await a.execute('secret_probe', { mode: 'echo-b64', text: 'hello' });
      assert.equal(b64.status, 200, b64.text);
      clean(b64.text, 'the answer with the echo in base64');
      // A failing upstream that echoes the request: the error the agent gets does not hold it either.
      const fail = await a.execute('secret_probe', { mode: 'fail', text: 'hello' });
      assert.ok(fail.status >= 400 || fail.body?.verification?.outcome !== 'verified', fail.text);
      clean(fail.text, 'the answer to a failed call');
      for (const r of [ok, b64, fail]) {
        const id = r.body?.receipt_id ?? r.body?.result?.receipt_id;
        if (!id) continue;
        const receipt = await a.signed('GET', `/v1/receipts/${id}`);
        assert.equal(receipt.status, 200, receipt.text);
        clean(receipt.text, `receipt ${id}`);
      }
      assert.equal(upstream.seen.length - seen, 3);
    });

    test('a required secret without a value: 503 secret_missing before any connection, the event naming it, never a value', async () => {
      const a = new Agent(info.client_socket);
      await a.lease();
      const conns = upstream.connections;
      const seen = upstream.seen.length;
      const r = await a.execute('secret_required_probe', { mode: 'ok', text: 'x' });
      assert.equal(r.status, 503, r.text);
      assert.equal(r.body.error, 'secret_missing');
      assert.match(r.body.message, /PROBE_ABSENT/);
      assert.match(r.body.message, /latchgate secrets set PROBE_ABSENT/);
      await sleep(200);
      assert.equal(upstream.connections, conns, 'a connection was opened');
      assert.equal(upstream.seen.length, seen);
      const events = JSON.parse(h.lg(['audit', '--json', '--action', 'secret_required_probe', '-l', '10']).stdout);
      const e = events.find((x) => x.error?.code === 'secret_missing');
      assert.ok(e, JSON.stringify(events));
      assert.match(e.error.message, /PROBE_ABSENT/);
    });

    test("after the runs: the ledger file and WAL, audit in every format, verify, reload, the gate's own output and every file in its home hold no form of the secret", async () => {
      const stateDir = info.state_dir;
      for (const format of ['table', 'json', 'jsonl', 'csv']) {
        const r = h.lg(['audit', '--format', format, '-l', '1000']);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /secret_probe/);
        clean(r.stdout + r.stderr, `latchgate audit --format ${format}`);
      }
      const v = h.lg(['verify', '--json']);
      clean(v.stdout + v.stderr, 'latchgate verify');
      const reload = h.lg(['reload']);
      assert.equal(reload.status, 0, reload.stderr);
      clean(reload.stdout + reload.stderr, 'latchgate reload');
      if (source === 'sops') {
        const list = h.lg(['secrets', 'list']);
        assert.match(list.stdout, /PROBE_TOKEN/);
        clean(list.stdout + list.stderr, 'latchgate secrets list');
        clean(readFileSync(h.sopsFile), 'the SOPS file');
      }
      const ledger = path.join(stateDir, 'ledger.sqlite3');
      for (const f of [ledger, `${ledger}-wal`]) if (existsSync(f)) clean(readFileSync(f), f);
      await up.stop();
      for (const f of [ledger, `${ledger}-wal`]) if (existsSync(f)) clean(readFileSync(f), `${f} after the gate stopped`);
      clean(up.out.stdout, "the gate's stdout");
      clean(up.out.stderr, "the gate's stderr");
      // Every file the gate and the CLI left in the home (state, runtime, config, checkpoints, keys), whatever its name.
      const files = regularFiles(h.home);
      assert.ok(files.includes(ledger), `the walk missed the ledger: ${files}`);
      for (const f of files) clean(readFileSync(f), f);
    });
  });
}
