#!/usr/bin/env node
// make bench-egress: a 200 MB download through the box's CONNECT tunnel
// against the same download straight over host loopback (same client program,
// one run), and the latency the credential proxy adds per request.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CredentialProxy } from '../dist/egress/credential-proxy.js';
import { makePki } from '../test/fixtures/egress-cred/pki.mjs';

const MB = 200;
const CHUNK = Buffer.alloc(1 << 20);
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-bench-egress-'));
chmodSync(dir, 0o755);

// The same client inside and outside the box: optionally CONNECT first, then read MB megabytes.
const CLIENT = `
import socket, sys, time
host, port, via = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
s = socket.create_connection((host, port))
if via != "-":
    s.sendall(("CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n" % (via, via)).encode())
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
n = 0
buf = bytearray(1 << 20)
while True:
    k = s.recv_into(buf)
    if k == 0: break
    n += k
print(n, time.perf_counter() - t0)
`;

// Async: the source server lives in this process and must keep sending.
const run = promisify(execFile);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const source = net.createServer((c) => {
  let left = MB;
  const pump = () => {
    while (left > 0) {
      left--;
      if (!c.write(CHUNK)) return c.once('drain', pump);
    }
    c.end();
  };
  pump();
});
await new Promise((r) => source.listen(0, '127.0.0.1', r));
const port = source.address().port;

function parse(out) {
  const [n, secs] = out.trim().split('\n').pop().split(' ').map(Number);
  if (n !== MB * (1 << 20)) throw new Error(`short read: ${out}`);
  return (n / (1 << 20)) / secs;
}

try {
  // The user-level config of this XDG_CONFIG_HOME (allow_hosts and pins are grants).
  const cfg = path.join(dir, 'cfg', 'latchgate', 'latchgate.toml');
  mkdirSync(path.dirname(cfg), { recursive: true });
  writeFileSync(cfg, `[sandbox.agent]\nallow_hosts = ["bench.example.test"]\n\n[sandbox.network.resolve]\n"bench.example.test" = "127.0.0.1:${port}"\n`);
  // The workspace is a project directory, not the HOME the launcher refuses as one.
  const ws = path.join(dir, 'work');
  mkdirSync(ws, { recursive: true });
  const env = { PATH: '/usr/bin:/bin', HOME: dir, XDG_STATE_HOME: path.join(dir, 'state'), XDG_RUNTIME_DIR: path.join(dir, 'run'), XDG_CONFIG_HOME: path.join(dir, 'cfg') };
  const direct = [];
  const tunnel = [];
  for (let i = 0; i < 3; i++) {
    const d = await run('/usr/bin/python3', ['-c', CLIENT, '127.0.0.1', String(port), '-']);
    direct.push(parse(d.stdout));
    const t = await run(process.execPath, [cli, 'sandbox', '--config', cfg, '--workspace', ws, '--', '/usr/bin/python3', '-c', CLIENT, '127.0.0.1', '3128', 'bench.example.test:443'], { env });
    tunnel.push(parse(t.stdout));
  }

  // Credential proxy: small HTTPS requests, direct vs through the proxy (keep-alive both ways).
  const pki = makePki(mkdtempSync(path.join(dir, 'pki-')));
  const upstream = https.createServer({ key: pki.server.key, cert: pki.server.cert }, (_req, res) => res.end('{"ok":true}'));
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const up = upstream.address().port;
  const proxy = new CredentialProxy({ routes: [{ name: 'bench', upstream: `https://127.0.0.1:${up}`, header: 'x-api-key', format: '{}', key: 'bench-key-0123456789' }], record: () => {}, extraCaCerts: [pki.caPem] });
  const pport = await proxy.listenTcp('127.0.0.1', 0);
  const httpsAgent = new https.Agent({ keepAlive: true, ca: pki.caPem });
  const httpAgent = new http.Agent({ keepAlive: true });
  const get = (mod, opts) => new Promise((resolve, reject) => {
    const t0 = performance.now();
    mod.get(opts, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - t0));
    }).on('error', reject);
  });
  const lat = { direct: [], proxied: [] };
  for (let i = 0; i < 600; i++) {
    const d = await get(https, { host: '127.0.0.1', port: up, path: '/v1/x', agent: httpsAgent, headers: { 'x-api-key': 'bench-key-0123456789' } });
    const p = await get(http, { host: '127.0.0.1', port: pport, path: '/bench/v1/x', agent: httpAgent });
    if (i >= 100) {
      lat.direct.push(d);
      lat.proxied.push(p);
    }
  }
  httpsAgent.destroy();
  httpAgent.destroy();
  await proxy.close();
  upstream.close();

  const ratio = median(tunnel) / median(direct);
  const added = median(lat.proxied) - median(lat.direct);
  console.log(`${MB} MB download, median of 3 (MB/s)`);
  console.log(`  direct over host loopback        ${median(direct).toFixed(0).padStart(8)}`);
  console.log(`  through the box's CONNECT tunnel ${median(tunnel).toFixed(0).padStart(8)}   ratio ${ratio.toFixed(2)}   goal >= 0.6 ${ratio >= 0.6 ? 'met' : 'NOT met'}`);
  console.log('credential proxy, 500 small HTTPS requests each (p50, ms)');
  console.log(`  direct                           ${median(lat.direct).toFixed(3).padStart(8)}`);
  console.log(`  through the credential proxy     ${median(lat.proxied).toFixed(3).padStart(8)}   adds ${added.toFixed(3)} ms   goal <= 1 ms ${added <= 1 ? 'met' : 'NOT met'}`);
} finally {
  source.close();
  rmSync(dir, { recursive: true, force: true });
}
