// latchgate itself inside the box (src/sandbox/latchgate-in-box.ts): the
// commands of /run/latchgate/bin run it, read-only; and where the workspace
// holds the installation the host runs latchgate from, the box cannot change
// what the host will run: its code, dependencies, addon, package.json, nor
// the directories above them (renamed away), while other files there stay
// the agent's to write.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MODES, skipReason, runBox, runNode, makeWorkspace, own, cleanupWorkspaces, distDir, bindAlias } from '../helpers/sandbox.mjs';
import { shq } from '../helpers/probe-calls.mjs';

after(() => cleanupWorkspaces());

for (const mode of MODES) {
  test(`[${mode}] latchgate and latchgate-mcp run in the box, read-only`, { skip: skipReason(mode), timeout: 120_000 }, async () => {
    const ws = makeWorkspace('self');
    const root = path.dirname(distDir(mode));
    const main = path.join(root, 'dist/cli/main.js');
    const r = await runBox(mode, {
      workspace: ws,
      cmd: ['/bin/sh', '-c', `latchgate --version; command -v latchgate-mcp; latchgate-mcp --help >/dev/null && echo mcp-help-ok; if (echo evil >> ${shq(main)}) 2>/dev/null; then echo WROTE; else echo DENIED; fi`],
    });
    assert.equal(r.code, 0, r.stderr);
    const version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version;
    assert.match(r.stdout, new RegExp(`^${version.replace(/\./g, '\\.')}$`, 'm'), r.stdout);
    assert.match(r.stdout, /^\/run\/latchgate\/bin\/latchgate-mcp$/m);
    assert.match(r.stdout, /^mcp-help-ok$/m, r.stderr);
    assert.match(r.stdout, /^DENIED$/m);
  });

  /** A copy of latchgate at dir (its dependencies linked), owned by the agent's user, and the path of its CLI. */
  const copyInstall = (dir) => {
    const src = path.dirname(distDir(mode));
    mkdirSync(dir, { recursive: true });
    for (const p of ['package.json', 'dist', 'profiles', 'definitions', 'policies', 'build/Release/latchgate.node', 'providers/build']) cpSync(path.join(src, p), path.join(dir, p), { recursive: true });
    // Where the dependencies really are: the box mounts them there (a checkout's node_modules may itself be a link).
    const deps = realpathSync(path.join(src, 'node_modules'));
    symlinkSync(deps, path.join(dir, 'node_modules'));
    return { src, deps, main: path.join(dir, 'dist/cli/main.js') };
  };
  const copyEnv = (ws) => ({ env: { XDG_STATE_HOME: path.join(ws, '.state'), XDG_RUNTIME_DIR: path.join(ws, '.run'), XDG_CONFIG_HOME: path.join(ws, '.cfg') }, timeoutMs: 120_000 });

  test(`[${mode}] the workspace is latchgate's installation: the box cannot change what the host runs from it`, { skip: skipReason(mode), timeout: 180_000 }, async () => {
    const ws = makeWorkspace('self-ws');
    const { deps, main } = copyInstall(ws);
    own(ws);
    const before = readFileSync(main, 'utf8');
    const attempts = {
      'append-code': `echo evil >> ${shq(main)}`,
      'replace-code': `rm -f ${shq(main)} && echo evil > ${shq(main)}`,
      'rename-dist': `mv ${shq(path.join(ws, 'dist'))} ${shq(path.join(ws, 'dist.old'))}`,
      'swap-deps': `rm ${shq(path.join(ws, 'node_modules'))} && ln -s /tmp ${shq(path.join(ws, 'node_modules'))}`,
      'package-json': `echo '{"type":"commonjs"}' > ${shq(path.join(ws, 'package.json'))}`,
      addon: `cp /bin/true ${shq(path.join(ws, 'build/Release/latchgate.node'))}`,
      providers: `touch ${shq(path.join(ws, 'providers/build/evil.wasm'))}`,
      policies: `echo '{}' > ${shq(path.join(ws, 'policies/data.json'))}`,
    };
    const tries = Object.entries(attempts).map(([k, c]) => `if (${c}) 2>/dev/null; then echo "TRY ${k} WROTE"; else echo "TRY ${k} DENIED"; fi`).join('\n');
    const legit = `echo notes > ${shq(path.join(ws, 'NOTES.md'))} && echo LEGIT-OK`;
    // The copy's own launcher: the installation it runs from is the workspace.
    const r = await runNode(mode, [main, 'sandbox', '--workspace', ws, '--', '/bin/sh', '-c', `${tries}\n${legit}`], copyEnv(ws));
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const wrote = r.stdout.split('\n').filter((l) => / WROTE$/.test(l));
    assert.deepEqual(wrote, [], `the box changed the installation the host runs:\n${r.stdout}`);
    assert.equal(Object.keys(attempts).filter((k) => r.stdout.includes(`TRY ${k} DENIED`)).length, Object.keys(attempts).length, r.stdout);
    assert.match(r.stdout, /^LEGIT-OK$/m, `other files there stay writable: ${r.stdout}\n${r.stderr}`);
    assert.equal(readFileSync(main, 'utf8'), before);
    assert.equal(readlinkSync(path.join(ws, 'node_modules')), deps);
    assert.equal(readFileSync(path.join(ws, 'NOTES.md'), 'utf8'), 'notes\n');
  });

  test(`[${mode}] latchgate installed below the workspace is refused: the box could plant modules Node would load from above it`, { skip: skipReason(mode), timeout: 120_000 }, async () => {
    const ws = makeWorkspace('self-below');
    const { main } = copyInstall(path.join(ws, 'tools', 'latchgate'));
    own(ws);
    const r = await runNode(mode, [main, 'sandbox', '--workspace', ws, '--', '/bin/sh', '-c', 'echo RAN'], copyEnv(ws));
    assert.equal(r.code, 125, `${r.stdout}\n${r.stderr}`);
    assert.ok(!r.stdout.includes('RAN'), 'the command ran');
    assert.match(r.stderr, new RegExp(`${ws.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: refused as a writable mount: latchgate runs from .*/tools/latchgate, and Node loads modules it does not find there from .*/tools/node_modules`));
    assert.match(r.stderr, /npm install -g latchgate/);
    assert.ok(!existsSync(path.join(ws, 'tools', 'node_modules')));
  });

  /**
   * A copy of latchgate at dir whose node_modules is a directory of links to
   * the dependencies where they are (the box mounts those at their own
   * paths), so the copy also runs inside the box; the path of its CLI.
   */
  const copyRunnable = (dir) => {
    const src = path.dirname(distDir(mode));
    mkdirSync(dir, { recursive: true });
    for (const p of ['package.json', 'dist', 'profiles', 'definitions', 'policies', 'build/Release/latchgate.node', 'providers/build']) cpSync(path.join(src, p), path.join(dir, p), { recursive: true });
    const deps = realpathSync(path.join(src, 'node_modules'));
    const linkAll = (from, to) => {
      mkdirSync(to);
      for (const e of readdirSync(from, { withFileTypes: true })) {
        if (e.name.startsWith('.')) continue;
        if (e.name.startsWith('@') && e.isDirectory()) linkAll(path.join(from, e.name), path.join(to, e.name));
        else symlinkSync(path.join(from, e.name), path.join(to, e.name));
      }
    };
    linkAll(deps, path.join(dir, 'node_modules'));
    return path.join(dir, 'dist/cli/main.js');
  };

  test(`[${mode}] a file of the installation hard-linked from a --rw directory: the launch is refused before anything runs`, { skip: skipReason(mode), timeout: 120_000 }, async () => {
    const ws = makeWorkspace('self-linked');
    const rw = makeWorkspace('self-linked-rw');
    const main = copyRunnable(path.join(makeWorkspace('self-linked-copy'), 'latchgate'));
    const alias = path.join(rw, 'main.js');
    linkSync(main, alias); // as a pnpm store or a `cp -al` copy holds one
    own(rw);
    const before = readFileSync(main, 'utf8');
    // The alias is the installation's file: a write through it changes what the host runs.
    writeFileSync(alias, `${before}// planted\n`);
    assert.equal(readFileSync(main, 'utf8'), `${before}// planted\n`);
    writeFileSync(alias, before);
    const r = await runNode(mode, [main, 'sandbox', '--workspace', ws, '--rw', rw, '--', '/bin/sh', '-c', `echo RAN; touch ${shq(path.join(rw, 'ran'))}; echo planted >> ${shq(alias)}`], copyEnv(ws));
    assert.equal(readFileSync(main, 'utf8'), before, 'the box changed the installation the host runs, through its hard link');
    assert.equal(r.code, 125, `${r.stdout}\n${r.stderr}`);
    assert.ok(!r.stdout.includes('RAN'), 'the command ran');
    assert.deepEqual(readdirSync(rw), ['main.js'], 'the box ran');
    assert.ok(r.stderr.includes(`${main} (2 links, 1 of them in it)`), r.stderr);
    assert.match(r.stderr, /has files with hard links outside it, which the box could write through/);
    assert.ok(r.stderr.includes(rw), r.stderr);
    assert.match(r.stderr, /npm install -g latchgate/);
    assert.match(r.stderr, /--trust-linked-install/);
  });

  test(`[${mode}] a --rw directory that shows the installation through a bind mount is refused before anything runs; a bind mount of another directory runs`, { skip: skipReason(mode) || (process.getuid() !== 0 && 'needs root to bind-mount'), timeout: 120_000 }, async () => {
    const ws = makeWorkspace('self-bind');
    const copy = makeWorkspace('self-bind-copy');
    const main = copyRunnable(path.join(copy, 'latchgate'));
    own(copy);
    const alias = bindAlias(copy);
    const other = makeWorkspace('self-bind-other');
    const otherAlias = bindAlias(other);
    const mountedInside = makeWorkspace('self-bind-holder');
    mkdirSync(path.join(mountedInside, 'vendor'));
    own(mountedInside);
    bindAlias(copy, path.join(mountedInside, 'vendor'));
    // The alias is the installation: a write through it changes what the host runs.
    const before = readFileSync(main, 'utf8');
    const through = path.join(alias, 'latchgate/dist/cli/main.js');
    writeFileSync(through, `${before}// planted\n`);
    assert.equal(readFileSync(main, 'utf8'), `${before}// planted\n`);
    writeFileSync(through, before);
    for (const [rw, why] of [
      // The installation's parent, whose node_modules Node searches.
      [alias, /refused as a writable mount: latchgate runs from .*, and Node loads modules it does not find there from .*\/node_modules, which the box could then write \(.* shows the same directory through another mount\)/],
      // The installation itself, below the alias.
      [path.join(alias, 'latchgate'), /refused as a writable mount: it holds latchgate's installation .* through another mount of the same directory/],
      // A directory with the installation mounted inside it (the box binds a tree with its submounts).
      [mountedInside, /holder-.*: refused as a writable mount: latchgate runs from .*, and Node loads modules it does not find there from .*\/node_modules, which the box could then write \(.* shows the same directory through another mount\)/],
    ]) {
      const r = await runNode(mode, [main, 'sandbox', '--workspace', ws, '--rw', rw, '--', '/bin/sh', '-c', `echo RAN; echo planted >> ${shq(through)}; echo planted >> ${shq(path.join(mountedInside, 'vendor/latchgate/dist/cli/main.js'))}`], copyEnv(ws));
      assert.equal(r.code, 125, `${r.stdout}\n${r.stderr}`);
      assert.ok(!r.stdout.includes('RAN'), 'the command ran');
      assert.match(r.stderr, why);
      assert.equal(readFileSync(main, 'utf8'), before, 'the box changed the installation the host runs, through a bind mount');
    }
    const ok = await runNode(mode, [main, 'sandbox', '--workspace', ws, '--rw', otherAlias, '--', '/bin/sh', '-c', `echo notes > ${shq(path.join(otherAlias, 'NOTES.md'))} && echo LEGIT-OK`], copyEnv(ws));
    assert.equal(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
    assert.match(ok.stdout, /^LEGIT-OK$/m);
    assert.equal(readFileSync(path.join(other, 'NOTES.md'), 'utf8'), 'notes\n');
  });

  test(`[${mode}] the same installation without links outside it starts and runs latchgate; the box cannot link its files into a writable mount`, { skip: skipReason(mode), timeout: 120_000 }, async () => {
    const ws = makeWorkspace('self-unlinked');
    const rw = makeWorkspace('self-unlinked-rw');
    const main = copyRunnable(path.join(makeWorkspace('self-unlinked-copy'), 'latchgate'));
    const before = readFileSync(main, 'utf8');
    const links = [path.join(rw, 'alias.js'), path.join(ws, 'alias.js')].map((to) => `if ln ${shq(main)} ${shq(to)} 2>/tmp/ln.err; then echo "LINKED ${to}"; else echo "NOT LINKED: $(cat /tmp/ln.err)"; fi`).join('\n');
    const r = await runNode(mode, [main, 'sandbox', '--workspace', ws, '--rw', rw, '--', '/bin/sh', '-c', `latchgate --version\n${links}`], copyEnv(ws));
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const version = JSON.parse(readFileSync(path.join(main, '../../../package.json'), 'utf8')).version;
    assert.match(r.stdout, new RegExp(`^${version.replace(/\./g, '\\.')}$`, 'm'), `${r.stdout}\n${r.stderr}`);
    // link(2) from a read-only mount to another mount fails with EXDEV: only links made before the launch count.
    assert.doesNotMatch(r.stdout, /^LINKED/m, r.stdout);
    assert.equal(r.stdout.match(/^NOT LINKED: .*Invalid cross-device link/gm)?.length, 2, r.stdout);
    assert.equal(statSync(main).nlink, 1);
    assert.equal(readFileSync(main, 'utf8'), before);
  });
}
