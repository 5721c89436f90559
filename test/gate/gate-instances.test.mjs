// An intent without a receipt is "in flight" while the gate process that
// wrote it lives, and "of unknown outcome" once it is gone (flock on a file
// per gate instance; released by the kernel even on SIGKILL).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GateInstances } from '../../dist/gate/instances.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-inst-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('an instance in another live process is running; once killed it is not; this process tracks its own grants', async () => {
  const me = new GateInstances(dir);
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { GateInstances } = await import(${JSON.stringify(new URL('../../dist/gate/instances.js', import.meta.url).href)});
    const i = new GateInstances(${JSON.stringify(dir)});
    console.log(i.id);
    setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const otherId = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(d.toString().trim())));
  assert.equal(me.isRunning({ grant_id: 'g1', instance_id: otherId }), true);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(me.isRunning({ grant_id: 'g1', instance_id: otherId }), false);
  assert.equal(me.isRunning({ grant_id: 'g2', instance_id: me.id }), false);
  me.running.add('g2');
  assert.equal(me.isRunning({ grant_id: 'g2', instance_id: me.id }), true);
  assert.equal(me.isRunning({ grant_id: 'g3', instance_id: null }), false, 'an intent of no known instance is of unknown outcome');
  me.close();
  // A new instance sweeps the dead one's lock file.
  const again = new GateInstances(dir);
  assert.equal(again.isRunning({ grant_id: 'x', instance_id: otherId }), false);
  again.close();
});

test('each instance publishes what it is next to its lock; another process lists it while it lives, not once it is killed, and its files are swept', async () => {
  const me = new GateInstances(dir, 'cli');
  me.publish({ receipt: 'kid-a' });
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { GateInstances } = await import(${JSON.stringify(new URL('../../dist/gate/instances.js', import.meta.url).href)});
    const i = new GateInstances(${JSON.stringify(dir)}, 'up');
    i.publish({ receipt: 'kid-b', grant: 'kid-c' });
    console.log(i.id);
    setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const otherId = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(d.toString().trim())));
  const live = me.live();
  const other = live.find((i) => i.id === otherId);
  assert.deepEqual({ ...other.info, started_at: undefined }, { id: otherId, pid: child.pid, role: 'up', started_at: undefined, kids: { receipt: 'kid-b', grant: 'kid-c' } });
  assert.equal(other.self, false);
  assert.deepEqual(live.find((i) => i.self).info.kids, { receipt: 'kid-a' });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(me.live().some((i) => i.id === otherId), false, 'a dead instance is not listed');
  assert.ok(existsSync(path.join(dir, 'instances', `${otherId}.json`)), 'until a new instance sweeps it');
  const again = new GateInstances(dir);
  assert.equal(existsSync(path.join(dir, 'instances', `${otherId}.json`)), false);
  assert.equal(existsSync(path.join(dir, 'instances', `${otherId}.lock`)), false);
  again.close();
  me.close();
});
