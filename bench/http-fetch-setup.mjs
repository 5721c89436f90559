// What the http_fetch benchmarks share (bench/provider-exec.mjs,
// bench/mcp.mjs): a local TLS upstream on loopback with a test CA, named
// api.github.com (one of http_fetch's allowed hosts); an in-process gate
// that pins that name to it ([gate.resolve]) and trusts the CA, with every
// action granted; and the floor: the same request made directly with Node's
// https, on a fresh TLS connection as the provider's HTTP host makes one
// (src/providers/http-transport.ts), with its TLS context made once, as the
// gate makes it.
import https from 'node:https';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { grantAll, startGate } from '../test/helpers/gate.mjs';
import { tlsUpstream } from '../test/helpers/tls-upstream.mjs';

export const HOST = 'api.github.com';
export const URL_BENCH = `https://${HOST}/bench`;

export const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
export const ms = (x) => `${x.toFixed(2)} ms`;

/**
 * Starts the upstream (handle as tlsUpstream takes it) and the gate.
 * Resolves { up, g, direct(), close() }.
 */
export async function httpFetchSetup(handle) {
  const up = await tlsUpstream([HOST], handle);
  // Calls back to back from one peer, faster than [gate] requests_per_second allows by default.
  const g = await startGate({ config: { resolve: up.pins(), extraCaCerts: [up.caFile], requestsPerSecond: 10_000, requestBurst: 10_000 } });
  grantAll(g);
  const secureContext = tls.createSecureContext({ ca: readFileSync(up.caFile) });
  const direct = (path = '/bench') =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: up.port, servername: HOST, path, headers: { host: HOST }, secureContext, agent: false }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  return {
    up,
    g,
    direct,
    async close() {
      await g.close();
      up.close();
    },
  };
}
