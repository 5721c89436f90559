// What the http_fetch benchmarks share (bench/provider-exec.mjs,
// bench/mcp.mjs), each part in its own process as deployed: a local TLS
// upstream on loopback with a test CA, named api.github.com (one of
// http_fetch's allowed hosts; bench/fixtures/http-fetch-upstream.mjs); a gate
// that pins that name to it ([gate.resolve]) and trusts the CA, with every
// action granted (bench/fixtures/http-fetch-gate.mjs); and, in the caller's
// process, the floor: the same request made directly with Node's https, on a
// fresh TLS connection as the provider's HTTP host makes one
// (src/providers/http-transport.ts), with its TLS context made once, as the
// gate makes it.
import { spawn } from 'node:child_process';
import https from 'node:https';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HOST = 'api.github.com';
export const URL_BENCH = `https://${HOST}/bench`;

export const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
export const ms = (x) => `${x.toFixed(2)} ms`;

/**
 * Starts `script` (bench/fixtures/ of checkout `dir`, this one by default, run
 * in it) with an IPC channel; resolves the child and the first line it prints.
 */
export async function child(script, args, flags = [], dir = fileURLToPath(new URL('..', import.meta.url))) {
  const p = spawn(process.execPath, [...flags, path.join(dir, 'bench', 'fixtures', script), ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const first = new Promise((resolve, reject) => {
    createInterface({ input: p.stdout }).once('line', resolve);
    p.once('exit', (code) => reject(new Error(`${dir}: bench/fixtures/${script} exited (${code}) before it was ready`)));
  });
  return { p, line: await first };
}

/** Resolves { up: { slowSeen(), release() }, g: { socket, pid, gc(), timeSteps(), steps() }, direct(), close() }. */
export async function httpFetchSetup() {
  const upstream = await child('http-fetch-upstream.mjs', [HOST]);
  const { port, caFile } = JSON.parse(upstream.line);
  let slow = 0;
  upstream.p.on('message', (m) => m === 'slow' && slow++);
  // BENCH_GATE_FLAGS: node flags for the gate's process (--cpu-prof, say).
  const gate = await child('http-fetch-gate.mjs', [String(port), caFile, HOST], ['--expose-gc', ...(process.env.BENCH_GATE_FLAGS?.split(' ').filter(Boolean) ?? [])]);
  const secureContext = tls.createSecureContext({ ca: readFileSync(caFile) });
  const direct = (path = '/bench') =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, servername: HOST, path, headers: { host: HOST }, secureContext, agent: false }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  /** Sends the gate's process `m`, resolving its answer. */
  const ask = (m) => new Promise((r) => { gate.p.once('message', r); gate.p.send(m); });
  const gone = (p) => new Promise((r) => (p.exitCode !== null ? r() : p.once('exit', r)));
  return {
    up: { slowSeen: () => slow, release: () => upstream.p.send('release') },
    g: {
      socket: gate.line,
      pid: gate.p.pid,
      gc: () => ask('gc'),
      /** Times each step of the gate's executions from now (src/gate/stage-timing.ts). */
      timeSteps: () => ask('steps-start'),
      /** Stops timing; resolves [[step, [ms, ...]], ...], in the order the steps first ended. */
      steps: async () => (await ask('steps')).steps,
    },
    direct,
    async close() {
      gate.p.disconnect();
      await gone(gate.p);
      upstream.p.disconnect();
      await gone(upstream.p);
    },
  };
}
