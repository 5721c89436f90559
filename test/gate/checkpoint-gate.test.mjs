// A running gate signs checkpoints ([ledger.checkpoints]): every N events it
// appends, then one last at shutdown, each in checkpoints.log and in a
// directory sink; a sink that cannot be reached is recorded once and never
// holds up a request. `latchgate checkpoint` beside the running gate, and
// `latchgate verify` afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Agent } from '../helpers/gate.mjs';
import { splitNotes } from '../../dist/ledger/tree-verify.js';
import { checkpointFileName } from '../../dist/ledger/checkpoint-sinks.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-cp-gate-'));
const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
const state = path.join(home, 'state', 'latchgate');
const outside = path.join(home, 'outside');
let up;
let info;
let stderr = '';

const lg = (...args) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const rows = (q) => {
  const db = new Database(path.join(state, 'ledger.sqlite3'), { readonly: true });
  try {
    return db.prepare(q).all();
  } finally {
    db.close();
  }
};

before(async () => {
  mkdirSync(path.join(home, 'config', 'latchgate'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(
    path.join(home, 'config', 'latchgate', 'latchgate.toml'),
    `[ledger.checkpoints]\nevery_events = 3\nevery_seconds = 0\n\n[ledger.checkpoints.sinks.outside]\ndirectory = ${JSON.stringify(outside)}\n\n` +
      // Nothing listens on port 1 of loopback: every delivery there fails at once.
      `[ledger.checkpoints.sinks.witness]\nurl = "https://127.0.0.1:1/checkpoints"\ntimeout_ms = 2000\n`,
  );
  up = spawn(process.execPath, [CLI, 'up', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  up.stdout.on('data', (d) => (out += d));
  up.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; i < 2400 && !out.includes('\n') && up.exitCode === null; i++) await sleep(25);
  info = JSON.parse(out.trim());
});

after(() => {
  up?.kill('SIGKILL');
  rmSync(home, { recursive: true, force: true });
});

test('every 3 events the gate appends: a checkpoint, in the table, checkpoints.log and the directory; the unreachable sink recorded once', async () => {
  const agent = new Agent(info.client_socket);
  for (let i = 0; i < 9; i++) await agent.lease(); // 9 lease_issued events, each answered though a sink is down
  for (let i = 0; i < 2400 && rows('SELECT size FROM checkpoints').length < 3; i++) await sleep(25);
  const cps = rows('SELECT size, note FROM checkpoints ORDER BY size');
  assert.ok(cps.length >= 3, `checkpoints: ${JSON.stringify(cps.map((c) => c.size))}`);
  // Delivered after the signing, in the background: wait for each file itself (a file being written aside is no delivery).
  const delivered = () => cps.every((c) => existsSync(path.join(outside, checkpointFileName(c.size))));
  for (let i = 0; i < 2400 && !delivered(); i++) await sleep(25);
  for (const c of cps) assert.equal(readFileSync(path.join(outside, checkpointFileName(c.size)), 'utf8'), c.note);
  const failed = lg('audit', '--json', '--event-type', 'checkpoint_sink_failed').out;
  const events = JSON.parse(failed);
  assert.equal(events.length, 1, failed);
  assert.equal(events[0].details.sink, 'witness');
  assert.match(events[0].details.error, /POST https:\/\/127\.0\.0\.1:1\/checkpoints: .*ECONNREFUSED/);
  assert.match(stderr, /checkpoint sink witness \(https:\/\/127\.0\.0\.1:1\/checkpoints\) failed/);
});

test('latchgate checkpoint beside the running gate, then shutdown signs the last head; verify passes', async () => {
  const r = lg('checkpoint', '--json');
  assert.equal(r.code, 3, 'a sink did not take it: exit 3');
  const cp = JSON.parse(r.out);
  assert.deepEqual(cp.sinks.map((s) => [s.sink, s.error === undefined]), [['log', true], ['outside', true], ['witness', false]]);
  assert.match(lg('checkpoint').out, /^latchgate\.local\/ledger\/[0-9a-f]{32}\n\d+\n[A-Za-z0-9+/]{43}=\n\n\u2014 latchgate\.local\/ledger\/[0-9a-f]{32} [A-Za-z0-9+/]+=*\n$/);
  const agent = new Agent(info.client_socket);
  await agent.lease(); // one more event, fewer than 3: only the shutdown covers it
  up.kill('SIGTERM');
  await new Promise((resolve) => (up.exitCode !== null ? resolve() : up.once('exit', resolve)));
  const [{ n }] = rows('SELECT count(*) AS n FROM audit_events');
  const [last] = rows('SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1');
  assert.equal(last.size, n, 'the last checkpoint covers every event');
  assert.ok(splitNotes(readFileSync(path.join(state, 'checkpoints.log'), 'utf8')).some((e) => e.note === last.note));
  assert.equal(readFileSync(path.join(outside, checkpointFileName(last.size)), 'utf8'), last.note);
  const v = lg('verify', '--json');
  assert.equal(v.code, 0, v.out);
  assert.equal(JSON.parse(v.out).checkpoints.problems.length, 0);
  const kept = path.join(home, 'kept.checkpoint');
  writeFileSync(kept, last.note);
  const key = lg('checkpoint', '--print-key').out.trim();
  assert.match(key, /^latchgate\.local\/ledger\/[0-9a-f]{32}\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/);
  const against = lg('verify', '--checkpoint', kept, '--trusted-key', key);
  assert.equal(against.code, 0, against.out);
  assert.match(against.out, /signed by the key given with --trusted-key: the ledger \(\d+ events\) extends it/);
});
