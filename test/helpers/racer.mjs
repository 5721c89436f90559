// The symlink racer (test/fixtures/symlink-racer.mjs) run as the box's uid
// against a root launcher, and what it aims at: root's own files and
// directories outside the workspace, with a snapshot to show none changed.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const RACER = new URL('../fixtures/symlink-racer.mjs', import.meta.url).pathname;

/**
 * Starts the racer as ids ({uid, gid}; as ourselves without) with cfg (see
 * the fixture). Resolves once it races; counts holds its events so far
 * (file, dir, socket, blocked); stop() ends it and resolves to them.
 */
export async function startRacer(ids, cfg) {
  const child = spawn(process.execPath, [RACER, JSON.stringify(cfg)], { ...(ids ?? {}), cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] });
  const counts = { file: 0, dir: 0, socket: 0, blocked: 0 };
  let ready;
  const started = new Promise((resolve) => (ready = resolve));
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const l of lines) {
      if (l === 'ready') ready();
      else counts[l]++;
    }
  });
  const exited = once(child, 'exit');
  await Promise.race([started, exited.then(([code]) => Promise.reject(new Error(`the racer exited (${code}) before racing`)))]);
  return {
    counts,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      return counts;
    },
    kill: () => child.kill('SIGKILL'),
  };
}

/**
 * Root's things to aim at, made in the root-owned directory `outside`:
 * dir/ (with an empty commands/ and settings.json, names a placeholder
 * could take), file and socket-target (0600, with content).
 */
export function rootTargets(outside) {
  mkdirSync(join(outside, 'dir/commands'), { recursive: true });
  writeFileSync(join(outside, 'dir/settings.json'), '');
  writeFileSync(join(outside, 'file'), 'root only\n', { mode: 0o600 });
  chmodSync(join(outside, 'file'), 0o600);
  writeFileSync(join(outside, 'socket-target'), 'root only\n', { mode: 0o600 });
  chmodSync(join(outside, 'socket-target'), 0o600);
  return { outside, fileTarget: join(outside, 'file'), dirTarget: join(outside, 'dir'), socketTarget: join(outside, 'socket-target') };
}

/** Everything under dir: type, mode, owner, size and content of each entry. */
export function snapshot(dir) {
  const out = {};
  const walk = (p) => {
    const st = lstatSync(p);
    out[p] = { mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, content: st.isFile() ? readFileSync(p, 'base64') : undefined };
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n));
  };
  walk(dir);
  return out;
}
