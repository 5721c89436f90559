// A local HTTPS upstream for provider tests: a test CA (openssl CLI) whose
// server certificate also names the hosts given, so that a gate pinning
// those names to 127.0.0.1 ([gate.resolve]) and trusting the CA ([gate]
// extra_ca_certs) reaches it as if it were them. Records every request.
import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { haveOpenssl, makePki } from '../fixtures/egress-cred/pki.mjs';

export const NO_OPENSSL = haveOpenssl() ? false : 'the openssl CLI is needed to make the test CA';

/** Starts the upstream; handle(req, res, body) answers (default: 200 text naming the URL). Resolves {port, seen, connections, caFile, pins(names), close}. */
export async function tlsUpstream(names, handle) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-upstream-'));
  const pki = makePki(dir, names.map((n) => `DNS:${n}`).join(','));
  const seen = [];
  const server = https.createServer({ key: pki.server.key, cert: pki.server.cert }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (handle && handle(req, res, body) !== false) return;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from ${req.url}`);
    });
  });
  const stats = { connections: 0 };
  server.on('secureConnection', () => stats.connections++);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    port,
    seen,
    /** TLS connections accepted so far. */
    get connections() {
      return stats.connections;
    },
    /** Resolves how many connections are open now. */
    open: () => new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n)))),
    caFile: pki.caFile,
    /** [gate.resolve] as the gate's config holds it: every name to this upstream. */
    pins: () => new Map(names.map((n) => [n, `127.0.0.1:${port}`])),
    close() {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
