// An in-process gate for integration tests: real SQLite, real keys, real
// Fastify on Unix sockets, the test providers behind the provider interface,
// and a client that builds DPoP proofs like an agent SDK would.
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openGate } from '../../dist/gate/factory.js';
import { buildGateApp } from '../../dist/gate/app.js';
import { boxIdentity, listenUnix, unixIdentity, unixPeer } from '../../dist/gate/transport.js';
import { createDpopKey, makeProof } from '../../dist/gate/auth/client.js';
import * as P from '../fixtures/providers.mjs';

export const FIXTURE_MANIFESTS = fileURLToPath(new URL('../fixtures/gate-manifests', import.meta.url));
export const BASE_URL = 'http://latchgate.local';
/** The principal of a gate's agentSocket. */
export const AGENT = 'agent';

export const TEST_PROVIDERS = {
  'builtin:test_success': P.success,
  'builtin:test_failure': P.failure,
  'builtin:test_throws': P.throws,
  'builtin:test_hang': P.hang,
  'builtin:test_bad_output': P.badOutput,
  'builtin:test_http_honest': P.httpHonest,
  'builtin:test_http_liar': P.httpLiar,
};

export function gateConfig(over = {}) {
  const uid = process.getuid();
  return {
    manifestDirs: [FIXTURE_MANIFESTS],
    principals: new Map([[uid, { name: 'tester', scopes: ['tools:call', 'audit:read'] }]]),
    operators: new Map([['op', { uid }]]),
    policy: {},
    publicBaseUrl: BASE_URL,
    ...over,
  };
}

/** Starts a gate on fresh sockets; stateDir may be reused to simulate a restart. */
export async function startGate({ stateDir, transport = P.fakeTransport(200), config = {}, providers = TEST_PROVIDERS, secrets, role } = {}) {
  const dir = stateDir ?? mkdtempSync(path.join(os.tmpdir(), 'latchgate-gate-'));
  const cfg = gateConfig(config);
  const opened = await openGate({ stateDir: dir, config: cfg, providers, transport, builtinManifests: true, ...(secrets ? { secrets } : {}), ...(role ? { role } : {}) });
  const identity = unixIdentity({ principals: cfg.principals, operators: new Map([...cfg.operators].map(([n, o]) => [o.uid, n])) });
  const sockDir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-sock-'));
  const client = buildGateApp({ service: opened.gate, role: 'client', identify: identity, peer: unixPeer });
  const admin = buildGateApp({ service: opened.gate, role: 'admin', identify: identity, peer: unixPeer });
  await listenUnix(client, path.join(sockDir, 'gate.sock'), 0o666);
  await listenUnix(admin, path.join(sockDir, 'gate-admin.sock'), 0o600);
  // An agent whose requests the test's own uid (the operator) may approve: a
  // box's socket, principal AGENT (the uid's own requests it may not).
  const agent = buildGateApp({ service: opened.gate, role: 'client', identify: boxIdentity(AGENT, ['tools:call', 'audit:read']), peer: () => `box:${AGENT}` });
  await listenUnix(agent, path.join(sockDir, 'agent.sock'), 0o600);
  return {
    stateDir: dir,
    socket: path.join(sockDir, 'gate.sock'),
    agentSocket: path.join(sockDir, 'agent.sock'),
    adminSocket: path.join(sockDir, 'gate-admin.sock'),
    ...opened,
    transport,
    async close({ keepState = false } = {}) {
      await client.close();
      await admin.close();
      await agent.close();
      opened.close();
      rmSync(sockDir, { recursive: true, force: true });
      if (!keepState) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One HTTP request over a Unix socket; resolves {status, headers, body, text}.
 * Sent once more, on a new connection, when it went on a kept-alive one the
 * gate had closed (this process's event loop held up meanwhile, by a
 * spawnSync say) and failed before any answer, as the SDK does
 * (src/sdk/transport.ts).
 */
export function request(socketPath, method, urlPath, opts = {}) {
  return send(socketPath, method, urlPath, opts, undefined).catch((e) => {
    if (!(e.staleConnection && ['ECONNRESET', 'EPIPE'].includes(e.code))) throw e;
    return send(socketPath, method, urlPath, opts, false);
  });
}

function send(socketPath, method, urlPath, { body, headers = {}, raw } = {}, agent) {
  return new Promise((resolve, reject) => {
    const payload = raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body);
    const h = { ...headers };
    if (payload !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    let answered = false;
    const req = http.request({ socketPath, method, path: urlPath, headers: h, ...(agent === false ? { agent } : {}) }, (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let parsed;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: parsed, text });
      });
    });
    req.on('error', (e) => reject(Object.assign(e, { staleConnection: req.reusedSocket && !answered })));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/**
 * A Unix socket whose connections reach `target` from a process of another
 * uid (a relay spawned as that uid): the gate sees that uid as the peer, so
 * an in-process Agent on the returned socket acts as another local user.
 * Needs root. Resolves { socket, close }.
 */
export async function relayAs(target, { uid, gid }) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-relay-'));
  chownSync(dir, uid, gid);
  const socket = path.join(dir, 'relay.sock');
  const code = `const net = require('net');
    net.createServer((c) => { const u = net.connect(process.argv[2]); c.pipe(u); u.pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); })
      .listen(process.argv[1], () => process.stdout.write('ready\\n'));`;
  const child = spawn(process.execPath, ['-e', code, socket, target], { uid, gid, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', (c) => reject(new Error(`relay as uid ${uid} exited with ${c}`)));
  });
  return {
    socket,
    async close() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An agent: a DPoP key, a lease, and signed requests. */
export class Agent {
  constructor(socket) {
    this.socket = socket;
  }

  async lease({ scopes = ['tools:call'], budgets } = {}) {
    this.key = await createDpopKey();
    const r = await request(this.socket, 'POST', '/v1/leases', { body: { scopes, dpop_jwk: this.key.jwk, ...(budgets ? { budgets } : {}) } });
    if (r.status !== 201) throw new Error(`lease refused: ${r.status} ${r.text}`);
    this.lease_jwt = r.body.lease_jwt;
    this.session_id = r.body.session_id;
    return r.body;
  }

  async proof(method, urlPath, over = {}) {
    return makeProof({ key: this.key, method, url: `${BASE_URL}${urlPath}`, leaseJwt: this.lease_jwt, ...over });
  }

  async signed(method, urlPath, body, { proof, headers = {} } = {}) {
    const dpop = proof ?? (await this.proof(method, urlPath));
    return request(this.socket, method, urlPath, { body, headers: { authorization: `DPoP ${this.lease_jwt}`, dpop, ...headers } });
  }

  execute(actionId, body, opts) {
    return this.signed('POST', `/v1/actions/${actionId}/execute`, body, opts);
  }
}

/** The test's operator ('op', this uid), as the admin socket identifies it. */
export function operatorCaller() {
  return { principal: 'operator:op', scopes: [], uid: process.getuid(), operator: 'op', transport: 'unix' };
}

/**
 * Grants every registered action through the admin act (the change and its
 * chained event together), to the principal (by default both the test uid's and the agent socket's).
 */
export function grantAll(g, principal) {
  const actions = g.ctx.registry.list().map((a) => a.manifest.action_id);
  for (const p of principal ? [principal] : ['tester', AGENT]) g.gate.admin.policyGrant(operatorCaller(), { principal: p, actions, sinks: ['http_read', 'http_write', 'fs_read', 'fs_write', 'fs_delete'] });
}

/** Advances the revocation epoch with its event only (no approvals revoked), as another process might. */
export function advanceEpochOnly(g) {
  return g.ctx.state.advanceEpoch((epoch) =>
    g.ctx.ledger.appendInTransaction({ event_type: 'admin_revoke_all', decision: 'allow', operator: { name: 'op', uid: process.getuid() }, subject: { principal: 'operator:op' }, details: { epoch, approvals_revoked: 0 } }),
  );
}

/**
 * Bytes written as they are to a Unix socket (duplicate headers, undecodable
 * URLs, broken HTTP that a client library would refuse to send); resolves
 * {status, headers, body, text} of the one response.
 */
export function rawRequest(socketPath, bytes) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => {
      const all = Buffer.concat(chunks).toString('utf8');
      const at = all.indexOf('\r\n\r\n');
      const head = at < 0 ? all : all.slice(0, at);
      let text = at < 0 ? '' : all.slice(at + 4);
      const [statusLine, ...lines] = head.split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      if (headers['transfer-encoding'] === 'chunked') text = dechunk(text);
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body, text });
    });
    // Not end(): a half-closed socket is an abort to the server; Connection: close ends it.
    sock.write(bytes);
  });
}

function dechunk(s) {
  let out = '';
  for (let i = 0; ;) {
    const nl = s.indexOf('\r\n', i);
    const n = parseInt(s.slice(i, nl), 16);
    if (!n) return out;
    out += s.slice(nl + 2, nl + 2 + n);
    i = nl + 2 + n + 2;
  }
}
