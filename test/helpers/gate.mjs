// An in-process gate for integration tests: real SQLite, real keys, real
// Fastify on Unix sockets, the test providers behind the provider interface,
// and a client that builds DPoP proofs like an agent SDK would.
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openGate } from '../../dist/gate/factory.js';
import { buildGateApp } from '../../dist/gate/app.js';
import { listenUnix, unixIdentity, unixPeer } from '../../dist/gate/transport.js';
import { createDpopKey, makeProof } from '../../dist/gate/auth/client.js';
import * as P from '../fixtures/providers.mjs';

export const FIXTURE_MANIFESTS = fileURLToPath(new URL('../fixtures/gate-manifests', import.meta.url));
export const BASE_URL = 'http://latchgate.local';

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
export async function startGate({ stateDir, transport = P.fakeTransport(200), config = {}, providers = TEST_PROVIDERS } = {}) {
  const dir = stateDir ?? mkdtempSync(path.join(os.tmpdir(), 'latchgate-gate-'));
  const cfg = gateConfig(config);
  const opened = await openGate({ stateDir: dir, config: cfg, providers, transport, builtinManifests: true });
  const identity = unixIdentity({ principals: cfg.principals, operators: new Map([...cfg.operators].map(([n, o]) => [o.uid, n])) });
  const sockDir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-sock-'));
  const client = buildGateApp({ service: opened.gate, role: 'client', identify: identity, peer: unixPeer });
  const admin = buildGateApp({ service: opened.gate, role: 'admin', identify: identity, peer: unixPeer });
  await listenUnix(client, path.join(sockDir, 'gate.sock'), 0o666);
  await listenUnix(admin, path.join(sockDir, 'gate-admin.sock'), 0o600);
  return {
    stateDir: dir,
    socket: path.join(sockDir, 'gate.sock'),
    adminSocket: path.join(sockDir, 'gate-admin.sock'),
    ...opened,
    transport,
    async close({ keepState = false } = {}) {
      await client.close();
      await admin.close();
      opened.close();
      rmSync(sockDir, { recursive: true, force: true });
      if (!keepState) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One HTTP request over a Unix socket; resolves {status, headers, body, text}. */
export function request(socketPath, method, urlPath, { body, headers = {}, raw } = {}) {
  return new Promise((resolve, reject) => {
    const payload = raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body);
    const h = { ...headers };
    if (payload !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    const req = http.request({ socketPath, method, path: urlPath, headers: h }, (res) => {
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
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
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

export function grantAll(g, principal = 'tester') {
  const actions = g.ctx.registry.list().map((a) => a.manifest.action_id);
  g.ctx.policyStore.grant(principal, actions, ['http_read', 'http_write', 'fs_read', 'fs_write']);
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
