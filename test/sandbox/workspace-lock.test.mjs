// Boxes share a workspace through a lock on each writable root: every
// launcher holds it shared while its box runs, and exclusively for a moment
// when it leaves (placeholders.ts). A box on a parent directory can write a
// subproject's directory, and its agent can take that lock itself with
// flock(1) and keep it. A launch on the subproject must then fail closed,
// within seconds, in one line naming the lock and how to find its holder,
// never wait silently for ever. Next to it: the same launch once that box is
// gone runs.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, own, runBox } from '../helpers/sandbox.mjs';

after(() => cleanupWorkspaces());

for (const mode of MODES) {
  describe(`a root's lock held by an agent in another box, launcher as ${mode}`, { skip: skipReason(mode) }, () => {
    test('the launch fails closed in one line naming the lock; once that box is gone it runs', async () => {
      const parent = makeWorkspace('lock');
      const sub = path.join(parent, 'sub');
      mkdirSync(sub);
      own(sub);
      let holder;
      const other = runBox(mode, {
        workspace: parent,
        cmd: ['/bin/sh', '-c', `exec flock -x ${sub} sh -c 'touch ${parent}/held; sleep 60'`],
        timeoutMs: 60000,
        onSpawn: (c) => (holder = c),
      });
      try {
        for (let i = 0; i < 200 && !existsSync(path.join(parent, 'held')); i++) await sleep(50);
        assert.ok(existsSync(path.join(parent, 'held')), 'the other box never took the lock');
        const r = await runBox(mode, { workspace: sub, cmd: ['/bin/true'], timeoutMs: 30000 });
        assert.equal(r.code, 125, r.stderr);
        assert.match(r.stderr, /cannot lock .*sub to share its placeholders with other boxes: something has held it locked exclusively for over \d+ s.*lslocks/);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      } finally {
        holder.kill('SIGTERM');
        await other.catch(() => undefined);
        if (holder.exitCode === null && holder.signalCode === null) await once(holder, 'exit');
      }
      const r = await runBox(mode, { workspace: sub, cmd: ['/bin/true'] });
      assert.equal(r.code, 0, r.stderr);
    });
  });
}
