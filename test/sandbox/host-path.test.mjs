// The launcher's PATH as a way to run code on the host after the box exits
// (host-path.ts): latchgate's own bin scripts start with `#!/usr/bin/env
// node`, so a `node` planted in a PATH directory the box can write runs the
// next time the user types `latchgate`. From a real box, in both launcher
// modes: node_modules/.bin of the workspace on PATH (absolute) keeps node,
// latchgate, npm... out of reach while packages' bins are still written;
// a relative PATH entry, or the workspace itself on PATH, refuses the launch.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PRELUDE, exists, results } from '../helpers/host-exec.mjs';
import { MODES, skipReason, runBox, makeWorkspace, own, testUser, cleanupWorkspaces, bindAlias } from '../helpers/sandbox.mjs';

const SYSTEM = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
after(() => cleanupWorkspaces());

for (const mode of MODES) {
  describe(`the host PATH, launcher as ${mode}`, { skip: skipReason(mode) }, () => {
    test('node_modules/.bin of the workspace on PATH: node and latchgate cannot be planted or replaced there; a package\'s bin still can', async () => {
      const ws = makeWorkspace('hp-bin');
      const bin = path.join(ws, 'node_modules/.bin');
      fs.mkdirSync(path.join(ws, 'node_modules/pkg'), { recursive: true });
      fs.mkdirSync(bin);
      fs.writeFileSync(path.join(ws, 'node_modules/pkg/cli.js'), '#!/usr/bin/env node\n', { mode: 0o755 });
      fs.symlinkSync('../pkg/cli.js', path.join(bin, 'pkg'));
      // A package that ships a `node` of its own: the link and what it leads to stay as they are.
      fs.mkdirSync(path.join(ws, 'node_modules/node/bin'), { recursive: true });
      fs.writeFileSync(path.join(ws, 'node_modules/node/bin/node'), '#!/bin/sh\necho real\n', { mode: 0o755 });
      fs.symlinkSync('../node/bin/node', path.join(bin, 'nodejs'));
      own(ws);
      const plant = `#!/bin/sh\necho planted\n`;
      const r = await runBox(mode, {
        workspace: ws,
        env: { PATH: `${bin}:${SYSTEM}` },
        cmd: ['/bin/sh', '-c', `${PRELUDE}
cd node_modules
t() { if ( eval "$2" ) 2>/tmp/.e; then echo "@@$1 OK"; else echo "@@$1 $(tr '\\n' ' ' </tmp/.e)"; fi; }
w node .bin/node
w latchgate .bin/latchgate
w latchgate-mcp .bin/latchgate-mcp
w npx .bin/npx
w pnpm .bin/pnpm
t rm-node 'rm -f .bin/node && ! test -e .bin/node'
t symlink-node 'ln -sfn /tmp/evil .bin/node'
t replace-node 'printf "${plant}" > .bin/.n && chmod +x .bin/.n && mv -f .bin/.n .bin/node'
t replace-nodejs 'rm -f .bin/nodejs && printf "${plant}" > .bin/nodejs'
w nodejs-target node/bin/node
t move-bin 'mv .bin .bin-old && mkdir .bin && printf "${plant}" > .bin/node'
t move-modules 'cd .. && mv node_modules nm-old'
w legit:new-bin .bin/tool
t legit:link 'ln -s ../pkg/cli.js .bin/pkg2'
w legit:pkg pkg/cli.js
`],
      });
      assert.equal(r.code, 0, r.stderr);
      const res = results(r.stdout);
      for (const k of ['node', 'latchgate', 'latchgate-mcp', 'npx', 'pnpm', 'nodejs-target']) assert.equal(res[k], 'EROFS', `${k}: ${r.stdout}`);
      for (const k of ['rm-node', 'symlink-node', 'replace-node', 'replace-nodejs', 'move-bin', 'move-modules']) assert.notEqual(res[k], 'OK', `${k}: ${r.stdout}`);
      for (const k of ['legit:new-bin', 'legit:link', 'legit:pkg']) assert.equal(res[k], 'OK', `${k}: ${r.stdout}`);
      // After the box: nothing of latchgate's names in node_modules/.bin, the placeholders gone, the package's bins there.
      for (const n of ['node', 'latchgate', 'latchgate-mcp', 'npm', 'npx', 'corepack', 'yarn', 'pnpm']) assert.ok(!exists(path.join(bin, n)), `${n} left in ${bin}`);
      assert.equal(fs.readlinkSync(path.join(bin, 'nodejs')), '../node/bin/node');
      assert.equal(fs.readFileSync(path.join(ws, 'node_modules/node/bin/node'), 'utf8'), '#!/bin/sh\necho real\n');
      assert.ok(!exists(path.join(ws, 'node_modules/.bin-old')) && !exists(path.join(ws, 'nm-old')));
      assert.equal(fs.readFileSync(path.join(bin, 'tool'), 'utf8'), 'planted\n');
      assert.equal(fs.readlinkSync(path.join(bin, 'pkg2')), '../pkg/cli.js');
      // The user's next `node` on the host, with that PATH, is not the box's.
      const u = testUser();
      const found = spawnSync('/bin/sh', ['-c', 'command -v node || true'], { encoding: 'utf8', env: { PATH: `${bin}:${path.dirname(process.execPath)}:${SYSTEM}` }, uid: u.self ? undefined : u.uid, gid: u.self ? undefined : u.gid });
      assert.ok(!found.stdout.startsWith(ws), found.stdout);
    });

    test('PATH entries that reach the workspace through symlinks (dangling, chained, below a missing directory) stay read-only where the host looks them up; a `..` after a symlink into the workspace refuses', async () => {
      const ws = makeWorkspace('hp-link');
      // The user's own symlinks, outside every box (its /tmp is private).
      const out = makeWorkspace('hp-out');
      fs.symlinkSync(path.join(ws, 'tools'), path.join(out, 'dangling')); // ws/tools does not exist yet
      fs.symlinkSync(path.join(ws, 'real-bin'), path.join(ws, 'bin')); // in the workspace, leading to a missing directory
      fs.symlinkSync(ws, path.join(out, 'ws')); // out/ws/a/bin: two parts missing below the link
      fs.mkdirSync(path.join(out, 'target/bin'), { recursive: true });
      fs.symlinkSync(path.join(out, 'target'), path.join(ws, 'hop')); // out/chain -> ws/hop -> out/target: a link on the way in the workspace
      fs.symlinkSync(path.join(ws, 'hop'), path.join(out, 'chain'));
      fs.mkdirSync(path.join(ws, 'sub'));
      fs.symlinkSync(path.join(ws, 'sub'), path.join(out, 'sub'));
      own(ws);
      const hostPath = [`${out}/dangling/bin`, `${ws}/bin`, `${out}/ws/a/bin`, `${out}/chain/bin/`, SYSTEM].join(':');
      const r = await runBox(mode, {
        workspace: ws,
        env: { PATH: hostPath },
        cmd: ['/bin/sh', '-c', `${PRELUDE}
t() { if ( eval "$2" ) 2>/tmp/.e; then echo "@@$1 OK"; else echo "@@$1 $(tr '\\n' ' ' </tmp/.e)"; fi; }
cd ${ws}
t dangling 'mkdir -p tools/bin; printf "#!/bin/sh\\necho planted\\n" > tools/bin/ls && chmod +x tools/bin/ls'
t link-target 'mkdir -p real-bin; printf "#!/bin/sh\\necho planted\\n" > real-bin/ls && chmod +x real-bin/ls'
t missing-parts 'mkdir -p a/bin; printf "#!/bin/sh\\necho planted\\n" > a/bin/ls && chmod +x a/bin/ls'
t retarget-hop 'ln -sfn ${ws}/evil hop'
t replace-hop 'mv hop hop-old'
w legit:file notes.txt
t legit:dir 'mkdir -p src/lib && printf x > src/lib/x'
`],
      });
      assert.equal(r.code, 0, r.stderr);
      const res = results(r.stdout);
      for (const k of ['dangling', 'link-target', 'missing-parts', 'retarget-hop', 'replace-hop']) assert.notEqual(res[k], 'OK', `${k}: ${r.stdout}`);
      for (const k of ['legit:file', 'legit:dir']) assert.equal(res[k], 'OK', `${k}: ${r.stdout}`);
      // After the box: the placeholders gone, the link as it was, and the host's `ls` is the system's.
      for (const p of ['tools', 'real-bin', 'a', 'evil', 'hop-old']) assert.ok(!exists(path.join(ws, p)), `${p} left in the workspace`);
      assert.equal(fs.readlinkSync(path.join(ws, 'hop')), path.join(out, 'target'));
      const u = testUser();
      const found = spawnSync('/bin/sh', ['-c', 'command -v ls'], { encoding: 'utf8', env: { PATH: hostPath }, uid: u.self ? undefined : u.uid, gid: u.self ? undefined : u.gid });
      assert.match(found.stdout, /^\/(usr\/)?(local\/)?bin\/ls\n$/);
      // `${out}/sub/..` is the workspace itself for the kernel (the parent of where the link leads), not ${out}.
      const dots = await runBox(mode, { workspace: ws, env: { PATH: `${out}/sub/..:${SYSTEM}` }, cmd: ['/bin/sh', '-c', 'echo ran > ran'] });
      assert.equal(dots.code, 125, dots.stderr);
      assert.match(dots.stderr, /PATH entry 1 ".*\/sub\/\.\." is the directory mounted read-write by --workspace/);
      assert.ok(!exists(path.join(ws, 'ran')));
      // Through the same link to a subdirectory: runs, that directory read-only.
      const sub = await runBox(mode, { workspace: ws, env: { PATH: `${out}/sub:${SYSTEM}` }, cmd: ['/bin/sh', '-c', `${PRELUDE}\nw sub ${ws}/sub/ls\nw top ${ws}/ran`] });
      assert.equal(sub.code, 0, sub.stderr);
      assert.deepEqual(results(sub.stdout), { sub: 'EROFS', top: 'OK' });
    });

    test('a PATH directory that a --rw shows through a bind mount refuses the launch; a bind mount of another directory runs', { skip: process.getuid() !== 0 && 'needs root to bind-mount' }, async () => {
      const ws = makeWorkspace('hp-bind');
      const tools = makeWorkspace('hp-bind-tools');
      fs.mkdirSync(path.join(tools, 'bin'));
      own(tools);
      const alias = bindAlias(tools);
      const other = makeWorkspace('hp-bind-other');
      const otherAlias = bindAlias(other);
      const hostPath = `${tools}/bin:${SYSTEM}`;
      const plant = `printf '#!/bin/sh\\necho planted\\n' > ${alias}/bin/ls && chmod +x ${alias}/bin/ls; echo ran`;
      const r = await runBox(mode, { workspace: ws, env: { PATH: hostPath }, args: ['--rw', alias], cmd: ['/bin/sh', '-c', plant] });
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, /PATH entry 1 ".*\/bin" is inside --rw .* through another mount of the same directory \(a bind mount\)/);
      assert.ok(!r.stdout.includes('ran') && !exists(path.join(tools, 'bin/ls')), 'the box ran');
      const ok = await runBox(mode, { workspace: ws, env: { PATH: hostPath }, args: ['--rw', otherAlias], cmd: ['/bin/sh', '-c', `echo notes > ${otherAlias}/NOTES.md && echo ran`] });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(fs.readFileSync(path.join(other, 'NOTES.md'), 'utf8'), 'notes\n');
    });

    test('a relative or empty entry in the launcher\'s PATH, or the workspace itself on it, refuses the launch (exit 125) naming it; --allow-relative-path runs', async () => {
      const ws = makeWorkspace('hp-rel');
      const fix = /remove the entry from PATH or make it absolute/;
      const cases = [
        [`node_modules/.bin:${SYSTEM}`, /PATH entry 1 "node_modules\/.bin" is relative/, fix],
        [`${SYSTEM}:`, /PATH entry 7 is empty/, fix],
        [`.:${SYSTEM}`, /PATH entry 1 "\." is relative/, fix],
        // The workspace itself on PATH: it cannot be read-only in the box.
        [`${ws}:${SYSTEM}`, /PATH entry 1 ".*" is the directory mounted read-write by --workspace/, /remove it from PATH/],
      ];
      for (const [p, ...shown] of cases) {
        const r = await runBox(mode, { workspace: ws, env: { PATH: p }, cmd: ['/bin/sh', '-c', 'echo ran > ran'] });
        assert.equal(r.code, 125, r.stderr);
        for (const m of shown) assert.match(r.stderr, m);
        assert.ok(!exists(path.join(ws, 'ran')), 'the command did not run');
      }
      const ok = await runBox(mode, { workspace: ws, env: { PATH: `node_modules/.bin:${SYSTEM}` }, args: ['--allow-relative-path', '--json'], cmd: ['/bin/sh', '-c', 'echo ran > ran'] });
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(ok.json.degraded, ['relative-path']);
      assert.match(ok.stderr, /running degraded \(relative-path\): asked for with --allow-relative-path/);
      assert.equal(fs.readFileSync(path.join(ws, 'ran'), 'utf8'), 'ran\n');
    });
  });
}
