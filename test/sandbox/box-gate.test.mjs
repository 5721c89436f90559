// The gate inside the box: /run/latchgate/gate.sock is the box's
// own socket; every caller through it is the box's principal; the box cannot
// reach the host's gate sockets; `latchgate sandbox` and `latchgate up` share
// one ledger at the same time.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, distDir, testUser, ROOT } from '../helpers/sandbox.mjs';

const client = fileURLToPath(new URL('../fixtures/box-gate-client.mjs', import.meta.url));
const manifests = fileURLToPath(new URL('../fixtures/box-gate-manifests', import.meta.url));
const dirs = [];
after(() => {
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** XDG dirs and a config for one mode's launcher, owned by whoever runs it. */
function gateHome(mode) {
  const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-gatehome-'));
  dirs.push(home);
  // The user-level config of this XDG_CONFIG_HOME: [gate] and principal are grants.
  const cfg = path.join(home, 'cfg', 'latchgate', 'latchgate.toml');
  mkdirSync(path.dirname(cfg), { recursive: true });
  writeFileSync(cfg, `[gate]\nmanifest_dirs = [${JSON.stringify(manifests)}]\n\n[sandbox.agent]\nprincipal = "box-${mode}"\n`);
  if (mode === 'user' && process.getuid() === 0) spawnSync('chown', ['-R', `${testUser().uid}:${testUser().gid}`, home]);
  const env = { XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'cfg') };
  return { home, cfg, env };
}

function cli(mode, args, env) {
  const u = testUser();
  const opts = { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', ...env } };
  if (mode === 'user' && process.getuid() === 0) Object.assign(opts, { uid: u.uid, gid: u.gid });
  return spawnSync(process.execPath, [path.join(distDir(mode), 'cli', 'main.js'), ...args], opts);
}

function boxArgs(mode, cfg) {
  const dist = distDir(mode);
  return ['--config', cfg, '--ro', dist, '--ro', path.join(path.dirname(dist), 'node_modules'), '--ro', path.dirname(client)];
}

for (const mode of MODES) {
  test(`[${mode}] the box calls the gate through its own socket, as the box's principal`, { skip: skipReason(mode) }, async () => {
    const g = gateHome(mode);
    const grant = cli(mode, ['policy', 'grant', '--config', g.cfg, `box-${mode}`, 't_noop'], g.env);
    assert.equal(grant.status, 0, grant.stderr);
    const ws = makeWorkspace('boxgate');
    const r = await runBox(mode, { workspace: ws, env: g.env, args: boxArgs(mode, g.cfg), cmd: ['/usr/bin/node', client, distDir(mode), 't_noop', '{"n":1}'] });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.equal(out.lease, 201);
    assert.equal(out.sub, `box-${mode}`, 'the lease names the principal the launcher fixed');
    assert.equal(out.status, 200, JSON.stringify(out.body));
    assert.ok(out.body.receipt_id);

    const audit = cli(mode, ['audit', '--config', g.cfg, '--json', '--principal', `box-${mode}`], g.env);
    const events = JSON.parse(audit.stdout);
    assert.deepEqual(events.map((e) => e.event_type), ['lease_issued', 'action_call']);
    assert.equal(events[1].execution.receipt_id, out.body.receipt_id);
    const v = cli(mode, ['verify', '--config', g.cfg, '--json'], g.env);
    assert.equal(v.status, 0, v.stdout);
    assert.equal(JSON.parse(v.stdout).receipts.total, 1);
    // The box's gate signed a checkpoint as it closed, covering what it recorded.
    const all = JSON.parse(cli(mode, ['audit', '--config', g.cfg, '--json', '--limit', '1000'], g.env).stdout);
    const covered = all.findIndex((e) => e.execution?.receipt_id === out.body.receipt_id) + 1;
    const latest = JSON.parse(v.stdout).checkpoints.latest;
    assert.ok(latest && latest.size >= covered && covered > 0, `checkpoint ${JSON.stringify(latest)}, the action_call is event ${covered}`);
  });

  test(`[${mode}] an action the box's principal was not granted is denied and recorded`, { skip: skipReason(mode) }, async () => {
    const g = gateHome(mode);
    const ws = makeWorkspace('boxgate');
    const r = await runBox(mode, { workspace: ws, env: g.env, args: boxArgs(mode, g.cfg), cmd: ['/usr/bin/node', client, distDir(mode), 't_noop', '{"n":1}'] });
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.equal(out.status, 403);
    assert.equal(out.body.error, 'policy_denied');
    const events = JSON.parse(cli(mode, ['audit', '--config', g.cfg, '--json', '--decision', 'deny'], g.env).stdout);
    assert.equal(events.length, 1);
    assert.equal(events[0].subject.principal, `box-${mode}`);
  });
}

test('[user] the host gate of `latchgate up` is out of reach; up and a box share one ledger at once', { skip: skipReason('user') }, async () => {
  const mode = 'user';
  const g = gateHome(mode);
  assert.equal(cli(mode, ['policy', 'grant', '--config', g.cfg, `box-${mode}`, 't_noop'], g.env).status, 0);
  const u = testUser();
  const up = spawn(process.execPath, [path.join(distDir(mode), 'cli', 'main.js'), 'up', '--config', g.cfg, '--json'], {
    env: { PATH: '/usr/bin:/bin', ...g.env },
    ...(process.getuid() === 0 ? { uid: u.uid, gid: u.gid } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let ready = '';
    let upErr = '';
    up.stdout.on('data', (d) => (ready += d));
    up.stderr.on('data', (d) => (upErr += d));
    // Generous: on a busy machine the gate's first start (keys, ledger, policy engine) takes seconds.
    // A whole line: the JSON may arrive in more than one chunk.
    const line = () => ready.split('\n').slice(0, -1).find((l) => l.includes('"ready"'));
    for (let i = 0; i < 1200 && !line() && up.exitCode === null; i++) await sleep(50);
    assert.ok(line(), `latchgate up did not report ready: ${upErr}`);
    const info = JSON.parse(line());
    assert.ok(existsSync(info.client_socket));
    const ws = makeWorkspace('boxgate');
    // Boxes and the host gate append to one ledger concurrently: the host gate
    // records each refused stranger (this test process's uid is not its principal).
    const strangers = Promise.all(Array.from({ length: 20 }, () => new Promise((resolve) => {
      const req = http.request({ socketPath: info.client_socket, method: 'POST', path: '/v1/leases', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', () => resolve(0));
      req.end('{}');
    })));
    const runs = await Promise.all([0, 1, 2].map(() => runBox(mode, { workspace: ws, env: g.env, args: boxArgs(mode, g.cfg), cmd: ['/bin/sh', '-c', `test -e ${info.client_socket} && echo REACHABLE; /usr/bin/node ${client} ${distDir(mode)} t_noop '{"n":2}'`] })));
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!r.stdout.includes('REACHABLE'), 'the host gate socket is visible in the box');
      assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()).status, 200);
    }
    const statuses = await strangers;
    const v = cli(mode, ['verify', '--config', g.cfg, '--json'], g.env);
    assert.equal(v.status, 0, v.stdout);
    assert.equal(JSON.parse(v.stdout).receipts.total, 3);
    if (process.getuid() !== u.uid) {
      assert.deepEqual([...new Set(statuses)], [401]);
      // The same refusal of one caller: the first in full, the rest counted
      // (src/ledger/coalesce.ts) into a summary written by the time up exits.
      const exited = new Promise((resolve) => up.once('exit', resolve));
      up.kill('SIGTERM');
      await exited;
      const refused = JSON.parse(cli(mode, ['audit', '--config', g.cfg, '--json', '--event-type', 'request_refused', '-l', '100'], g.env).stdout);
      assert.equal(refused[0].details.coalesced, undefined);
      assert.equal(refused.reduce((n, e) => n + (e.details.coalesced?.count ?? 1), 0), 20, JSON.stringify(refused));
    }
  } finally {
    up.kill('SIGTERM');
  }
});
