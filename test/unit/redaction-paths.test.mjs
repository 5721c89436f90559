// One upstream echo, two ways out: the credential proxy (a box's key) and
// the provider host (a gate secret) both send the key to the same local
// HTTPS upstream, which echoes it back in tricky encodings (base64url at an
// odd offset, upper-case hex, JSON with \u escapes, percent-encoded twice,
// percent inside JSON, in a header). Both must hand back the same redacted
// text: they share src/egress/key-redaction.ts, and a path that redacted
// less (or its own way) fails here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialProxy } from '../../dist/egress/credential-proxy.js';
import { createHttpHost } from '../../dist/providers/host-http.js';
import { EnvSecretSource, SECRET_ENV_PREFIX } from '../../dist/providers/secret-source.js';
import { parsePin } from '../../dist/egress/ssrf.js';
import { haveOpenssl, makePki } from '../fixtures/egress-cred/pki.mjs';
import { leaks } from '../helpers/secrets-gate.mjs';

const skip = haveOpenssl() ? false : 'openssl is not installed';
const KEY = `sk-two-${randomBytes(12).toString('hex')}/+"`;

/** The echo of a key: each line a form an upstream might send it back in. */
function echo(key) {
  const b = Buffer.from(key);
  const u = [...key].map((c, i) => (i % 2 ? `\\u00${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}` : JSON.stringify(c).slice(1, -1))).join('');
  return [
    `b64url=${Buffer.concat([Buffer.from('ab'), b, Buffer.from('c')]).toString('base64url')}`,
    `b64=${Buffer.concat([Buffer.from('z'), b]).toString('base64')}`,
    `hex=${b.toString('hex').toUpperCase()}`,
    `json={"k":"${u}"}`,
    `pct2=${encodeURIComponent(encodeURIComponent(key))}`,
    `jsonpct=${JSON.stringify(encodeURIComponent(key))}`,
    `upper=${key.toUpperCase()}`,
  ].join('\n');
}

let dir;
let server;
let port;
let proxy;
let proxyPort;
let caPem;
const got = [];

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'latchgate-redaction-paths-'));
  const pki = makePki(dir);
  server = https.createServer({ key: pki.server.key, cert: pki.server.cert }, (req, res) => {
    const key = req.headers['x-api-key'];
    got.push(key);
    res.setHeader('content-type', 'text/plain');
    res.setHeader('x-echo', encodeURIComponent(String(key)));
    res.end(key ? echo(key) : '-');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;
  proxy = new CredentialProxy({
    routes: [{ name: 'route', upstream: 'https://api.example.test', header: 'x-api-key', format: '{}', key: KEY }],
    extraCaCerts: [pki.caPem],
    resolve: (host, p) => (host === 'api.example.test' && p === 443 ? { host: '127.0.0.1', port } : undefined),
    record: () => {},
  });
  proxyPort = await proxy.listenTcp('127.0.0.1', 0);
  caPem = pki.caPem;
});

after(async () => {
  await proxy?.close();
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function viaProxy() {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: proxyPort, path: '/route/echo' }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ header: res.headers['x-echo'], body: Buffer.concat(chunks).toString() }));
    }).on('error', reject);
  });
}

async function viaProviderHost() {
  const req = { method: 'GET', url: 'https://api.example.test/echo', headers: [['x-api-key', '{{secret:TWO}}']] };
  const host = createHttpHost({
    allowed_domains: ['api.example.test'],
    allowed_methods: ['GET'],
    pins: new Map([['api.example.test', parsePin(`127.0.0.1:${port}`)]]),
    ca: [caPem],
    timeout_ms: 5000,
    max_response_bytes: 65536,
    max_request_bytes: 4096,
    secrets: new EnvSecretSource({ [`${SECRET_ENV_PREFIX}TWO`]: KEY }),
    declared_secrets: ['TWO'],
    // The gate's rendering of the action's template: the one request the secret is filled in.
    secret_template: { method: req.method, url: req.url, headers: Object.fromEntries(req.headers) },
  });
  try {
    const r = await host(req);
    return { header: r.headers.find(([n]) => n === 'x-echo')?.[1], body: Buffer.from(r.body).toString() };
  } finally {
    host.close();
  }
}

test('the credential proxy and the provider host redact the same tricky echo the same way', { skip }, async () => {
  const a = await viaProxy();
  const b = await viaProviderHost();
  assert.deepEqual(got, [KEY, KEY], 'the upstream got the key on both paths');
  for (const [path, r] of [['credential proxy', a], ['provider host', b]]) {
    assert.deepEqual(leaks(r.body + r.header, KEY), [], `${path}: ${r.body}`);
    assert.equal(r.header, '[redacted]', path);
    // Every line still there, the key in it replaced.
    for (const line of r.body.split('\n')) assert.match(line, /^[a-z0-9]+=.*\[redacted\]/, `${path}: ${line}`);
  }
  assert.equal(a.body, b.body, 'the two paths redact differently');
});
