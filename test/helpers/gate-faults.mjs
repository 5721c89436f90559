// Helpers for the gate's fault and bad-input tests:
// ledger look-ups by row id, polling, the crash fixture server, and ledger
// copies to tamper with, parallel bursts and the action_call events of a session.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDb } from '../../dist/ledger/db.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { buildGateApp } from '../../dist/gate/app.js';
import { boxIdentity, listenUnix } from '../../dist/gate/transport.js';
import { Agent, FIXTURE_MANIFESTS, grantAll, request, startGate, TEST_PROVIDERS } from './gate.mjs';

export const CRASH_MANIFESTS = fileURLToPath(new URL('../fixtures/gate-crash-manifests', import.meta.url));
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const CRASH_SERVER = fileURLToPath(new URL('../fixtures/gate-crash-server.mjs', import.meta.url));

/** A fresh temporary directory removed after the test. */
export function tempDir(t, prefix = 'latchgate-gt-') {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Starts a gate and closes it after the test (t.after). */
export async function gateFor(t, opts = {}) {
  const g = await startGate(opts);
  t.after(() => g.close(opts.keepState ? { keepState: true } : {}));
  return g;
}

/** A gate closed after the test, every action granted, and an agent on its socket holding a lease. */
export async function leasedGate(t) {
  const g = await gateFor(t);
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  return { g, a };
}

/** The id of the newest audit event (0 for an empty ledger). */
export function lastEventId(g) {
  return g.db.prepare('SELECT coalesce(max(id), 0) AS n FROM audit_events').get().n;
}

/** Audit events stored after row `afterId`, oldest first, parsed, with their row id. */
export function eventsSince(g, afterId) {
  return g.db
    .prepare('SELECT id, event_json FROM audit_events WHERE id > ? ORDER BY id')
    .all(afterId)
    .map((r) => ({ id: r.id, ...JSON.parse(r.event_json) }));
}

/** The events after `afterId` whose error.code is `code`. */
export function eventsWithCode(g, afterId, code) {
  return eventsSince(g, afterId).filter((e) => e.error?.code === code);
}

/** Polls `fn` until it returns a truthy value (or throws after `timeoutMs`). */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 10, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Lines in a marker file (0 when absent): how many times a side effect happened. */
export function markerCount(file) {
  if (!existsSync(file)) return 0;
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
}

/** A provider that appends one line to `markerFile` (the side effect), then answers. */
export function sideEffectProvider(markerFile) {
  return {
    async execute(task) {
      appendFileSync(markerFile, `${JSON.stringify(task.request)}\n`);
      return { ok: true, output: { done: true }, provider_receipt: { wrote: markerFile } };
    },
  };
}

/** The gate options the crash server and the restarted gate share. */
export function crashGateOptions(stateDir, provider) {
  return {
    stateDir,
    config: { manifestDirs: [FIXTURE_MANIFESTS, CRASH_MANIFESTS] },
    providers: { ...TEST_PROVIDERS, 'builtin:test_side_effect': provider },
  };
}

/**
 * Spawns test/fixtures/gate-crash-server.mjs: a gate in its own process whose
 * t_side_effect provider writes `markerFile` and then hangs. Resolves once
 * the server printed its socket paths and the client socket exists.
 */
export async function spawnCrashServer(t, { stateDir, markerFile }) {
  const child = spawn(process.execPath, [CRASH_SERVER], {
    env: { ...process.env, LATCHGATE_TEST_STATE_DIR: stateDir, LATCHGATE_TEST_MARKER: markerFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const info = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`crash server did not start in 10 s; stderr: ${stderr}`)), 10_000);
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(out.slice(0, nl)));
        } catch (e) {
          reject(new Error(`crash server printed ${JSON.stringify(out)}: ${e.message}`));
        }
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`crash server exited (${code ?? signal}) before it was ready; stderr: ${stderr}`));
    });
  });
  // A killed server cannot remove its socket directory: do it for it.
  t.after(() => rmSync(path.dirname(info.socket), { recursive: true, force: true }));
  await waitFor(() => existsSync(info.socket), { what: 'the crash server socket' });
  return { child, exited, stderr: () => stderr, ...info };
}

/**
 * `latchgate verify --json` run as a command on stateDir (reached as the
 * default state directory, $XDG_STATE_HOME/latchgate, a link to it; no
 * configuration): its exit code and report, and with text: true its human
 * output too (a second run, which must exit the same).
 */
export function cliVerify(t, stateDir, { text = false } = {}) {
  const home = tempDir(t, 'latchgate-verify-home-');
  mkdirSync(path.join(home, 'state'));
  symlinkSync(stateDir, path.join(home, 'state', 'latchgate'));
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_CONFIG_HOME: path.join(home, 'config'), XDG_RUNTIME_DIR: path.join(home, 'run') };
  const run = (...extra) => spawnSync(process.execPath, [CLI, 'verify', ...extra], { env, cwd: home, encoding: 'utf8' });
  const json = run('--json');
  let report;
  try {
    report = JSON.parse(json.stdout);
  } catch {
    throw new Error(`latchgate verify --json printed no report (exit ${json.status}): ${json.stdout}${json.stderr}`);
  }
  const out = { code: json.status, report, stderr: json.stderr, text: '' };
  if (text) {
    const human = run();
    assert.equal(human.status, json.status, `--json and text agree: ${human.stderr}`);
    out.text = human.stdout;
  }
  return out;
}

/** Runs SQL on a ledger file with the sqlite3 command (as someone who can write the state directory would); throws on an error. */
export function sqlite3(file, sql) {
  const r = spawnSync('sqlite3', ['-bail', file], { input: sql, encoding: 'utf8' });
  if (r.error) throw new Error(`sqlite3 could not run (${r.error.message}); scripts/setup.sh installs it`);
  if (r.status !== 0) throw new Error(`sqlite3 ${file}: ${r.stderr}`);
  return r.stdout;
}

/** Admin request on the operator socket. */
export function admin(g, method, urlPath, body) {
  return request(g.adminSocket, method, urlPath, body === undefined ? {} : { body });
}

/**
 * A consistent copy of a gate's ledger (backup API, WAL included) opened on
 * its own connection, with the gate's key store: something to tamper with.
 */
export async function ledgerCopy(t, g) {
  const dir = tempDir(t, 'latchgate-tamper-');
  const file = path.join(dir, 'ledger.sqlite3');
  await g.db.backup(file);
  const db = openDb(file);
  t.after(() => db.close());
  const keys = new KeyStore(path.join(g.stateDir, 'keys'));
  return { db, keys, verify: () => verifyLedger(db, keys) };
}

/**
 * One more client socket on a running gate whose callers are `principal`
 * (as a sandbox's box socket is): a second principal without a second uid.
 */
export async function boxSocket(t, g, principal, scopes = ['tools:call']) {
  const dir = tempDir(t, 'latchgate-box-');
  const app = buildGateApp({ service: g.gate, role: 'client', identify: boxIdentity(principal, scopes), peer: () => `box:${principal}` });
  const socket = path.join(dir, 'gate.sock');
  await listenUnix(app, socket, 0o666);
  t.after(() => app.close());
  return socket;
}

/** n parallel executions, each with its own fresh DPoP proof (built before any is sent). */
export async function burst(a, actionId, n, body = (i) => ({ n: i })) {
  const paths = `/v1/actions/${actionId}/execute`;
  const proofs = await Promise.all(Array.from({ length: n }, () => a.proof('POST', paths)));
  return Promise.all(proofs.map((proof, i) => a.execute(actionId, body(i), { proof })));
}

/** The action_call events of a session, oldest first, parsed. */
export function decisionEvents(g, sessionId) {
  return g.db
    .prepare("SELECT event_json FROM audit_events WHERE event_type = 'action_call' AND session_id = ? ORDER BY id")
    .all(sessionId)
    .map((r) => JSON.parse(r.event_json));
}

/**
 * Replaces gate g's WAL sync until restored: the next sync (the `nth` from
 * now: an execute's intent is its first, its receipt its second) waits for
 * release() (or fails with fail()); the others run as they would.
 */
export function holdNextSync(g, nth = 1) {
  const wal = g.ctx.wal;
  const real = wal.sync.bind(wal);
  let release;
  let fail;
  let entered;
  const reached = new Promise((r) => (entered = r));
  const held = new Promise((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  let seen = 0;
  wal.sync = () => {
    if (++seen < nth) return real();
    wal.sync = real; // only that one is held
    entered();
    return held.then(() => real());
  };
  return { reached, release: () => release(), fail: (e) => fail(e), restore: () => (wal.sync = real) };
}
