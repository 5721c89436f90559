// `latchgate keys rotate` with gate processes running on the same state: a
// real `latchgate up` and a second gate in another process. Each publishes
// the kid it signs with; the rotation reports which took the new key, and
// exits 3 when one did not (a process still signing with the retired key
// writes what verification refuses).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Agent, request } from '../helpers/gate.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const SETUP = new URL('../../dist/gate/setup.js', import.meta.url).href;
const manifests = fileURLToPath(new URL('../fixtures/cli-manifests', import.meta.url));
const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-rot-'));
const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
const me = os.userInfo().username;
const children = [];
let up;
let info;

function lg(...args) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) };
}

/** Resolves the first line a child prints; fails if it exits first. Generous: a loaded machine starts node slowly. */
function firstLine(child) {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.once('exit', (c) => reject(new Error(`exited with ${c} before it was ready`)));
  });
}

/** Another gate process on the same state: opens the gate, signs one receipt key load, stays. */
async function secondGate() {
  const code = `const { gateSetup, openSharedGate } = await import(${JSON.stringify(SETUP)});
    const g = await openSharedGate(gateSetup(), 'other');
    g.ctx.keys.current('receipt');
    console.log(JSON.stringify({ pid: process.pid, instance_id: g.ctx.instances.id, kid: g.ctx.keys.current('receipt').kid }));
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return { child, ...JSON.parse(await firstLine(child)) };
}

function instanceFile(id) {
  return path.join(info.state_dir, 'instances', `${id}.json`);
}

async function execute(agent) {
  const r = await agent.execute('t_noop', { n: 1 });
  assert.equal(r.status, 200, r.text);
  const db = new Database(path.join(info.state_dir, 'ledger.sqlite3'), { readonly: true });
  try {
    return JSON.parse(db.prepare('SELECT receipt_json FROM receipts WHERE receipt_id = ?').pluck().get(r.body.receipt_id));
  } finally {
    db.close();
  }
}

function rotate(...extra) {
  const r = lg('keys', 'rotate', '--kind', 'receipt', '--json', ...extra);
  return { ...r, report: JSON.parse(r.out) };
}

const byPid = (report, pid) => report.processes.find((p) => p.pid === pid);

before(async () => {
  const cfgDir = path.join(home, 'config', 'latchgate');
  mkdirSync(cfgDir, { recursive: true });
  writeFileSync(
    path.join(cfgDir, 'latchgate.toml'),
    `[gate]\nmanifest_dirs = [${JSON.stringify(manifests)}]\n\n[identity.principals.${process.getuid()}]\nname = "${me}"\nscopes = ["tools:call"]\n\n[operators.${me}]\nuid = ${process.getuid()}\n`,
  );
  chmodSync(home, 0o755);
  up = spawn(process.execPath, [CLI, 'up', '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(up);
  info = JSON.parse(await firstLine(up));
  assert.equal(lg('policy', 'grant', me, 't_noop').code, 0);
});

after(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await new Promise((r) => c.once('exit', r));
  }
  rmSync(home, { recursive: true, force: true });
});

test('a rotation is taken by every running gate at once: the report lists each, and the running `up` signs its next receipt with the new kid', async () => {
  const agent = new Agent(info.client_socket);
  await agent.lease();
  const first = await execute(agent); // `up` has loaded the receipt key and signs with it
  const other = await secondGate();
  assert.equal(other.kid, first.signing_key_id);

  const r = rotate();
  assert.equal(r.code, 0, r.err);
  assert.equal(r.report.previous_kid, first.signing_key_id);
  assert.notEqual(r.report.kid, first.signing_key_id);
  assert.equal(r.report.all_picked_up, true);
  assert.deepEqual(
    { up: byPid(r.report, up.pid), other: byPid(r.report, other.pid) },
    {
      up: { instance_id: byPid(r.report, up.pid).instance_id, pid: up.pid, role: 'up', started_at: byPid(r.report, up.pid).started_at, kid: r.report.kid, picked_up: true, self: false },
      other: { instance_id: other.instance_id, pid: other.pid, role: 'other', started_at: byPid(r.report, other.pid).started_at, kid: r.report.kid, picked_up: true, self: false },
    },
  );
  assert.ok(r.report.processes.some((p) => p.self && p.role === 'cli' && p.picked_up), 'the rotating command is listed as itself');

  // What the report says is what `up` does: its next receipt carries the new kid, and verifies.
  const second = await execute(agent);
  assert.equal(second.signing_key_id, r.report.kid);
  const v = lg('verify', '--json');
  assert.equal(v.code, 0, v.out);

  // The report is in the audit event.
  const ev = lg('audit', '--json', '--event-type', 'admin_keys_rotated').json().at(-1);
  assert.equal(ev.details.kid, r.report.kid);
  assert.equal(ev.details.previous_kid, first.signing_key_id);
  assert.equal(byPid(ev.details, up.pid).picked_up, true);
  assert.equal(byPid(ev.details, other.pid).picked_up, true);

  // Human output lists the processes.
  const human = lg('keys', 'rotate', '--kind', 'receipt');
  assert.equal(human.code, 0, human.err);
  assert.match(human.out, new RegExp(`pid ${up.pid}\\s+up\\s+picked up`));
  assert.match(human.out, new RegExp(`pid ${other.pid}\\s+other\\s+picked up`));
  other.child.kill('SIGKILL');
  await new Promise((res) => other.child.once('exit', res));
});

test('a gate process that cannot take the new key (stopped) is reported, loudly, with exit 3; once resumed it takes it; a killed one is not listed', async () => {
  const other = await secondGate();
  other.child.kill('SIGSTOP');
  const r = rotate('--wait', '1');
  assert.equal(r.code, 3, r.err);
  assert.equal(r.report.all_picked_up, false);
  const stopped = byPid(r.report, other.pid);
  assert.equal(stopped.picked_up, false);
  assert.equal(stopped.kid, r.report.previous_kid);
  assert.match(stopped.note, new RegExp(`still signs with ${r.report.previous_kid}`));
  assert.equal(byPid(r.report, up.pid).picked_up, true, 'the running `up` did take it');
  assert.match(r.err, new RegExp(`WARNING: 1 running gate process\\(es\\) did not pick up the new receipt key ${r.report.kid}`));
  assert.match(r.err, new RegExp(`pid ${other.pid} \\(other`));
  assert.match(r.err, /Fix: restart those processes/);

  // Resumed, it reads the key file again on its own (no signature needed) and publishes the new kid.
  other.child.kill('SIGCONT');
  let published;
  for (let i = 0; i < 1200; i++) {
    published = JSON.parse(readFileSync(instanceFile(other.instance_id), 'utf8'));
    if (published.kids.receipt === r.report.kid) break;
    await sleep(50);
  }
  assert.equal(published.kids.receipt, r.report.kid);
  assert.equal(published.pid, other.pid);
  assert.equal(published.role, 'other');

  // Killed: no longer listed, and the rotation succeeds.
  other.child.kill('SIGKILL');
  await new Promise((res) => other.child.once('exit', res));
  const after = rotate();
  assert.equal(after.code, 0, after.err);
  assert.equal(byPid(after.report, other.pid), undefined);
  assert.equal(byPid(after.report, up.pid).picked_up, true);
});

test('--wait is bounded: a negative or too long wait is refused before anything is rotated', () => {
  const before = lg('audit', '--json', '--event-type', 'admin_keys_rotated').json().length;
  const neg = lg('keys', 'rotate', '--wait', '-1');
  assert.notEqual(neg.code, 0);
  assert.match(neg.err, /expected a number of seconds/);
  const long = lg('keys', 'rotate', '--wait', '3600');
  assert.notEqual(long.code, 0);
  assert.match(long.err, /wait_seconds: expected a number of seconds from 0 to 60/);
  assert.equal(lg('audit', '--json', '--event-type', 'admin_keys_rotated').json().length, before);
});

test("the admin API carries the same report: a rotation through the running gate's admin socket lists that gate as itself and every other gate process", async () => {
  const other = await secondGate();
  const r = await request(info.admin_socket, 'POST', '/v1/admin/keys/rotate', { body: { kind: 'grant', wait_seconds: 30 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.kind, 'grant');
  assert.equal(r.body.all_picked_up, true);
  assert.deepEqual(
    r.body.processes.filter((p) => p.pid === up.pid || p.pid === other.pid).map((p) => [p.role, p.self, p.kid === r.body.kid, p.picked_up]).sort(),
    [['other', false, true, true], ['up', true, true, true]],
  );
  const bad = await request(info.admin_socket, 'POST', '/v1/admin/keys/rotate', { body: { kind: 'grant', wait_seconds: 'soon' } });
  assert.equal(bad.status, 400);
  assert.match(bad.body.message, /wait_seconds: expected a number of seconds/);
  other.child.kill('SIGKILL');
  await new Promise((res) => other.child.once('exit', res));
});

test('a rotation made by another operator while one waits is not taken for a lag: the processes on the newer key count as picked up', async () => {
  const other = await secondGate();
  other.child.kill('SIGSTOP'); // holds the first rotation in its wait
  const history = path.join(info.state_dir, 'keys', 'lease-keys.jwks');
  const entries = () => JSON.parse(readFileSync(history, 'utf8')).keys.length;
  const before = entries();
  const first = spawn(process.execPath, [CLI, 'keys', 'rotate', '--kind', 'lease', '--json', '--wait', '60'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(first);
  let out = '';
  first.stdout.on('data', (d) => (out += d));
  const exited = new Promise((res) => first.once('exit', (code) => res(code)));
  for (let i = 0; i < 2400 && entries() === before; i++) await sleep(25);
  assert.equal(entries(), before + 1, 'the first rotation is made and waits');
  const again = lg('keys', 'rotate', '--kind', 'lease', '--json', '--wait', '0');
  assert.equal(again.code, 3, 'the stopped process is behind the second rotation too');
  other.child.kill('SIGCONT');
  assert.equal(await exited, 0, out);
  const report = JSON.parse(out);
  assert.equal(again.json().previous_kid, report.kid);
  assert.equal(report.all_picked_up, true);
  const resumed = byPid(report, other.pid);
  assert.equal(resumed.kid, again.json().kid);
  assert.match(resumed.note, /made current by a later rotation/);
  other.child.kill('SIGKILL');
  await new Promise((res) => other.child.once('exit', res));
});
