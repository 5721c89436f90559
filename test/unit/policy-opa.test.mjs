// OPA behind the decision interface: a fake OPA server on 127.0.0.1 (right
// answer, slow answer, refused connection, malformed JSON, wrong shape...) and
// OPA wasm modules. No `opa` binary exists here, so the wasm modules are
// hand-assembled ones that speak OPA's wasm ABI with a fixed answer
// (test/fixtures/policy/fake-opa-wasm.mjs), plus modules that are not OPA's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OpaServerEngine, OpaWasmEngine, OpaLoadError, mapOpaDecision, DEFAULT_OPA_TIMEOUT_MS } from '../../dist/policy/opa.js';
import { ENGINE_FAILURE } from '../../dist/policy/engine.js';
import { buildFakeOpaWasm, buildPlainWasm } from '../fixtures/policy/fake-opa-wasm.mjs';
import { input, data } from '../fixtures/policy/inputs.mjs';
import { tempDir } from '../fixtures/unit/helpers.mjs';

// ---- fake OPA server ------------------------------------------------------------

const received = [];
const routes = {
  '/v1/data/latchgate/decision': (req, res, body) => {
    const i = JSON.parse(body).input;
    const decision =
      i.action_trust_verdict !== 'digest_ok'
        ? { allow: false, deny_reason: 'untrusted action', policy_version: '2024.1' }
        : { allow: true, requires_approval: i.action_risk_level === 'high', policy_version: '2024.1', budgets_after: { calls_remaining: i.budgets_before.calls_remaining - 1 } };
    json(res, 200, { result: decision });
  },
  '/slow': (req, res) => {
    const t = setTimeout(() => json(res, 200, { result: { allow: true, requires_approval: false } }), 20_000);
    res.on('close', () => clearTimeout(t));
  },
  '/slow-body': (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"result": {"allow": ');
    const t = setTimeout(() => res.end('true, "requires_approval": false}}'), 20_000);
    res.on('close', () => clearTimeout(t));
  },
  '/malformed': (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"result": {"allow": tru');
  },
  '/wrong-shape': (req, res) => json(res, 200, { result: { allow: 'yes' } }),
  '/allow-without-approval-flag': (req, res) => json(res, 200, { result: { allow: true } }),
  '/allow-with-reason': (req, res) => json(res, 200, { result: { allow: true, requires_approval: false, deny_reason: 'x' } }),
  '/undefined': (req, res) => json(res, 200, {}),
  '/array': (req, res) => json(res, 200, [{ result: { allow: true } }]),
  '/deny-no-reason': (req, res) => json(res, 200, { result: { allow: false } }),
  '/error-500': (req, res) => json(res, 500, { code: 'internal_error', message: 'eval failed' }),
  '/redirect': (req, res) => {
    res.writeHead(307, { location: '/v1/data/latchgate/decision' });
    res.end();
  },
  '/huge': (req, res) => json(res, 200, { result: { allow: false, deny_reason: 'x'.repeat(2 * 1024 * 1024) } }),
};

function json(res, status, doc) {
  const b = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
}

let server;
let base;
before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ url: req.url, method: req.method, type: req.headers['content-type'], body });
      const h = routes[req.url];
      if (!h) return json(res, 404, { code: 'not_found' });
      h(req, res, body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

const opa = (path, opts) => new OpaServerEngine(`${base}${path}`, opts);

test('OPA server: a right answer becomes the decision; the request is {input}', async () => {
  received.length = 0;
  const e = opa('/v1/data/latchgate/decision');
  assert.equal(e.kind, 'opa-server');
  assert.equal(e.timeoutMs, DEFAULT_OPA_TIMEOUT_MS);
  const i = input();
  const r = await e.decide(i, data());
  assert.deepEqual(r, { allow: true, requires_approval: false, determining_policies: ['opa:latchgate/decision'], policy_version: 'opa-server:2024.1' });
  assert.equal(received.length, 1);
  assert.equal(received[0].method, 'POST');
  assert.equal(received[0].type, 'application/json');
  assert.deepEqual(JSON.parse(received[0].body), { input: i });
  assert.equal((await e.decide(input({ action_risk_level: 'high' }), data())).requires_approval, true);
  const d = await e.decide(input({ action_trust_verdict: 'untrusted' }), data());
  assert.equal(d.allow, false);
  assert.equal(d.deny_reason, 'untrusted action');
});

test('OPA server: no answer within the timeout -> policy_engine_timeout', async () => {
  const faults = [];
  for (const path of ['/slow', '/slow-body']) {
    const e = opa(path, { timeoutMs: 150, onFault: (f) => faults.push(f) });
    const t0 = Date.now();
    const r = await e.decide(input(), data());
    const took = Date.now() - t0;
    assert.equal(r.allow, false);
    assert.equal(r.deny_reason, ENGINE_FAILURE.timeout, path);
    // Not a speed goal: it gave up long before the answer would have come (and the reason says timeout).
    assert.ok(took < 15_000, `gave up after ${took} ms`);
  }
  assert.equal(faults.length, 2);
  assert.match(faults[0].detail, /150 ms/);
});

test('OPA server: the deadline holds even where the HTTP client does not stop at the abort', async (t) => {
  // fetch as it behaved once in the suite: the abort ignored, the answer read 20 s later.
  const real = globalThis.fetch;
  globalThis.fetch = (url, { signal: _ignored, ...init }) => real(url, init);
  t.after(() => (globalThis.fetch = real));
  const e = opa('/slow', { timeoutMs: 150 });
  const t0 = Date.now();
  const r = await e.decide(input(), data());
  assert.equal(r.allow, false);
  assert.equal(r.deny_reason, ENGINE_FAILURE.timeout);
  assert.ok(Date.now() - t0 < 15_000, 'the decision waited for the answer instead of the deadline');
});

test('OPA server: connection refused -> policy_engine_unavailable', async () => {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  const faults = [];
  const e = new OpaServerEngine(`http://127.0.0.1:${port}/v1/data/latchgate/decision`, { onFault: (f) => faults.push(f) });
  const r = await e.decide(input(), data());
  assert.equal(r.allow, false);
  assert.equal(r.deny_reason, ENGINE_FAILURE.unavailable);
  assert.match(faults[0].detail, /ECONNREFUSED/);
});

test('OPA server: HTTP errors and redirects -> policy_engine_unavailable', async () => {
  for (const path of ['/error-500', '/redirect', '/nowhere']) {
    const r = await opa(path).decide(input(), data());
    assert.equal(r.deny_reason, ENGINE_FAILURE.unavailable, path);
  }
});

test('OPA server: malformed JSON, wrong shapes, undefined, oversized -> policy_engine_invalid_response', async () => {
  for (const path of ['/malformed', '/wrong-shape', '/allow-without-approval-flag', '/allow-with-reason', '/undefined', '/array', '/huge']) {
    const r = await opa(path).decide(input(), data());
    assert.equal(r.allow, false, path);
    assert.equal(r.requires_approval, false, path);
    assert.equal(r.deny_reason, ENGINE_FAILURE.invalidResponse, path);
  }
  const r = await opa('/deny-no-reason').decide(input(), data());
  assert.equal(r.allow, false);
  assert.equal(r.deny_reason, 'opa: denied without a reason');
});

test('OPA server: an invalid input never reaches the server', async () => {
  received.length = 0;
  const r = await opa('/v1/data/latchgate/decision').decide(input({ action_risk_level: 'severe' }), data());
  assert.equal(r.deny_reason, ENGINE_FAILURE.inputInvalid);
  assert.equal(received.length, 0);
});

test('OPA server: bad URLs and timeouts are refused at construction', () => {
  assert.throws(() => new OpaServerEngine('not a url'), OpaLoadError);
  assert.throws(() => new OpaServerEngine('file:///etc/passwd'), OpaLoadError);
  assert.throws(() => new OpaServerEngine('http://u:p@127.0.0.1:1/'), OpaLoadError);
  assert.throws(() => new OpaServerEngine('http://127.0.0.1:1/', { timeoutMs: 0 }), OpaLoadError);
});

test('mapOpaDecision: upstream decision shapes', () => {
  assert.deepEqual(mapOpaDecision({ allow: true, requires_approval: true, budgets_after: {}, approved_secrets: [] }, 'v', 'ep'), {
    allow: true, requires_approval: true, determining_policies: ['opa:ep'], policy_version: 'v',
  });
  assert.deepEqual(mapOpaDecision({ allow: false, deny_reason: 'no matching allow rule' }, 'v', 'ep'), {
    allow: false, requires_approval: false, deny_reason: 'no matching allow rule', determining_policies: ['opa:ep'], policy_version: 'v',
  });
  assert.deepEqual(mapOpaDecision({ allow: true, requires_approval: false, determining_policies: ['acl', 'allow'] }, 'v', 'ep').determining_policies, ['acl', 'allow']);
  for (const bad of [undefined, null, true, [], 'allow', { allow: 1 }, { allow: false, deny_reason: 3 }, { allow: true, requires_approval: false, determining_policies: 'x' }]) {
    assert.equal(mapOpaDecision(bad, 'v', 'ep').fail, ENGINE_FAILURE.invalidResponse, JSON.stringify(bad));
  }
});

// ---- OPA wasm -----------------------------------------------------------------------

function wasmFile(t, name, bytes) {
  const p = join(tempDir(t, 'latchgate-opa-'), name);
  writeFileSync(p, bytes);
  return p;
}
const resultSet = (decision) => JSON.stringify([{ result: decision }]);

test('OPA wasm: an OPA-ABI module is loaded, given data, evaluated and mapped', async (t) => {
  const p = wasmFile(t, 'policy.wasm', buildFakeOpaWasm({ result: resultSet({ allow: true, requires_approval: true, allowed_sinks: ['http_read'] }) }));
  const e = await OpaWasmEngine.load(p);
  assert.equal(e.kind, 'opa-wasm');
  assert.match(e.version, /^[0-9a-f]{64}$/);
  const r = await e.decide(input(), data());
  assert.deepEqual(r, { allow: true, requires_approval: true, determining_policies: ['opa:latchgate/decision'], policy_version: r.policy_version });
  assert.equal(r.policy_version.slice(0, 16), e.version.slice(0, 16));
  // again, and with other data (setData again)
  assert.deepEqual(await e.decide(input(), data()), r);
  assert.equal((await e.decide(input(), { acl: {}, allowlist: {} })).allow, true);

  const deny = await OpaWasmEngine.load(wasmFile(t, 'deny.wasm', buildFakeOpaWasm({ result: resultSet({ allow: false, deny_reason: 'no matching allow rule' }) })));
  const d = await deny.decide(input(), data());
  assert.equal(d.allow, false);
  assert.equal(d.deny_reason, 'no matching allow rule');
});

test('OPA wasm: wrong shapes, an undefined decision and a trapping policy deny', async (t) => {
  const cases = [
    [resultSet({ allow: 'true' }), ENGINE_FAILURE.invalidResponse],
    [resultSet({ allow: true }), ENGINE_FAILURE.invalidResponse],
    ['[]', ENGINE_FAILURE.invalidResponse],
    ['[{"result": 1}, {"result": 2}]', ENGINE_FAILURE.invalidResponse],
    ['{"result": {"allow": true}}', ENGINE_FAILURE.invalidResponse],
    ['[{"result": {"allow": tr', ENGINE_FAILURE.evaluationError], // the SDK cannot parse what the module returned
  ];
  for (const [result, reason] of cases) {
    const e = await OpaWasmEngine.load(wasmFile(t, 'p.wasm', buildFakeOpaWasm({ result })));
    const r = await e.decide(input(), data());
    assert.equal(r.allow, false, result);
    assert.equal(r.deny_reason, reason, result);
  }
  const trap = await OpaWasmEngine.load(wasmFile(t, 'trap.wasm', buildFakeOpaWasm({ result: '[]', trap: true })));
  const r = await trap.decide(input(), data());
  assert.equal(r.deny_reason, ENGINE_FAILURE.evaluationError);
});

test('OPA wasm: a module that is not an OPA policy fails closed with a clear error', async (t) => {
  const plain = wasmFile(t, 'plain.wasm', buildPlainWasm());
  await assert.rejects(OpaWasmEngine.load(plain), (e) => e instanceof OpaLoadError && /is not an OPA policy module/.test(e.message) && /opa build -t wasm/.test(e.message));
  const faults = [];
  const e = new OpaWasmEngine(plain, { onFault: (f) => faults.push(f) });
  const r = await e.decide(input(), data());
  assert.deepEqual([r.allow, r.requires_approval, r.deny_reason], [false, false, ENGINE_FAILURE.unavailable]);
  assert.match(faults[0].detail, /missing exports opa_malloc/);

  const garbage = wasmFile(t, 'garbage.wasm', Buffer.from('this is not webassembly'));
  await assert.rejects(OpaWasmEngine.load(garbage), /not a valid WebAssembly module/);
  assert.equal((await new OpaWasmEngine(garbage).decide(input(), data())).deny_reason, ENGINE_FAILURE.unavailable);

  await assert.rejects(OpaWasmEngine.load('/nonexistent/policy.wasm'), /cannot read the OPA policy/);
  assert.equal((await new OpaWasmEngine('/nonexistent/policy.wasm').decide(input(), data())).deny_reason, ENGINE_FAILURE.unavailable);

  const otherEntry = wasmFile(t, 'other.wasm', buildFakeOpaWasm({ result: '[]', entrypoints: { 'example/allow': 0 } }));
  await assert.rejects(OpaWasmEngine.load(otherEntry), /has no entrypoint latchgate\/decision \(it has: example\/allow\)/);
  assert.equal((await (await OpaWasmEngine.load(otherEntry, { entrypoint: 'example/allow' })).decide(input(), data())).deny_reason, ENGINE_FAILURE.invalidResponse);
});
