// The box's life: the launcher exits with the
// command's status (128+N for signal N); signals sent to the launcher reach
// the command; the box's init reaps orphans; when the command exits, whatever
// it left behind dies with it; when the launcher is killed with SIGKILL, every
// process of the box dies, double-forked and setsid daemons included; several
// boxes run side by side; the socket directory a killed launcher left is
// removed by the next launcher, never one whose launcher still runs.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, own, runBox, sh } from '../helpers/sandbox.mjs';
import { buildEscapeProbe } from '../helpers/escape-probe.mjs';

const probe = await buildEscapeProbe();
const RO_PROBE = ['--ro', path.dirname(probe)];
const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
const SIG = os.constants.signals;

const tmpDirs = [];
after(() => {
  cleanupWorkspaces();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** Resolves once the child's stdout matches re. */
function waitForOutput(child, re, ms = 10000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`never saw ${re} on stdout; got: ${buf}`)), ms);
    child.stdout.on('data', (d) => {
      buf += d;
      if (re.test(buf)) {
        clearTimeout(timer);
        resolve(buf);
      }
    });
  });
}

/** Starts a box and hands back its launcher process along with the result promise. */
function startBox(mode, opts) {
  let child;
  const done = runBox(mode, { ...opts, onSpawn: (c) => (child = c) });
  return { child, done };
}

/**
 * Host processes that belong to a box: their cmdline contains marker, or they
 * live in the PID namespace nsLink. Zombies (empty cmdline, no namespace) are
 * already dead and not counted.
 */
function hostProcesses(marker, nsLink, exclude = []) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid || exclude.includes(pid)) continue;
    let cmdline;
    let ns;
    try {
      // A zombie is dead already (it only waits for whoever reaps orphans on the host).
      if (/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) continue;
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      continue;
    }
    try {
      ns = readlinkSync(`/proc/${pid}/ns/pid`);
    } catch {
      ns = undefined;
    }
    if ((marker && cmdline.includes(marker)) || (nsLink && ns === nsLink)) out.push({ pid, cmdline, ns });
  }
  return out;
}

for (const mode of MODES) {
  describe(`[${mode} launcher] lifecycle`, { skip: skipReason(mode) }, () => {
    test('exit status: the command\'s own code, 128+N when signal N killed it', async () => {
      const cases = [
        ['exit 0', 0],
        ['exit 1', 1],
        ['exit 42', 42],
        ['exit 255', 255],
        ['sh -c "exit 3"; true', 0], // a child's status is not the command's
        ['kill -TERM $$; sleep 5', 128 + SIG.SIGTERM],
        ['kill -KILL $$; sleep 5', 128 + SIG.SIGKILL],
        ['kill -SEGV $$; sleep 5', 128 + SIG.SIGSEGV],
        ['kill -INT $$; sleep 5', 128 + SIG.SIGINT],
      ];
      const results = await Promise.all(cases.map(([script]) => sh(mode, script, { workspace: makeWorkspace('exit') })));
      cases.forEach(([script, want], i) => assert.equal(results[i].code, want, `${script}: exit ${results[i].code}\n${results[i].stderr}`));
      // The probe killed by seccomp (SIGSYS) is the command itself.
      const sys = await runBox(mode, { workspace: makeWorkspace('exit'), args: [...RO_PROBE, '--json'], cmd: [probe, 'x32-getpid'] });
      assert.equal(sys.code, 128 + SIG.SIGSYS, sys.stderr);
      assert.equal(sys.json?.exitCode, 128 + SIG.SIGSYS, sys.stderr);
      assert.equal(sys.json?.signal, SIG.SIGSYS, sys.stderr);
    });

    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
      test(`${sig} sent to the launcher reaches the command, which decides the exit status`, async () => {
        const name = sig.slice(3);
        const script = `trap 'echo got ${name}; exit 7' ${name}; echo ready; sleep 30 & wait $!; echo wait-returned`;
        const t0 = Date.now();
        const { child, done } = startBox(mode, { workspace: makeWorkspace('sig'), cmd: ['/bin/sh', '-c', script] });
        await waitForOutput(child, /^ready$/m);
        child.kill(sig);
        const r = await done;
        assert.equal(r.code, 7, `exit ${r.code} signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^got ${name}$`, 'm'));
        assert.doesNotMatch(r.stdout, /wait-returned/);
        assert.ok(Date.now() - t0 < 10000, 'the launcher returned promptly');
      });
    }

    test('SIGTERM to the launcher of a command that does not handle it: 143, promptly', async () => {
      const t0 = Date.now();
      const { child, done } = startBox(mode, { workspace: makeWorkspace('sig'), cmd: ['/bin/sh', '-c', 'echo ready; sleep 30; echo survived'] });
      await waitForOutput(child, /^ready$/m);
      child.kill('SIGTERM');
      const r = await done;
      assert.equal(r.code, 143, r.stderr);
      assert.doesNotMatch(r.stdout, /survived/);
      assert.ok(Date.now() - t0 < 10000, `took ${Date.now() - t0} ms`);
    });

    test('the init reaps orphans: no zombie is left, the box exits cleanly', async () => {
      const ws = makeWorkspace('reap');
      const script = [
        // Orphans: their parent subshell exits at once; they are re-parented to the box's init.
        'for i in 1 2 3 4 5 6; do ( sleep 0.1 & ); done',
        'sh -c "sleep 0.2 & sleep 0.1 & exit 0"',
        // A double-forked setsid daemon that finishes while the command still runs.
        `${shq(probe)} daemonize 0.2 ${shq(path.join(ws, 'early.pid'))} > /dev/null`,
        'sleep 1',
        'echo "ZOMBIES $(cat /proc/[0-9]*/stat 2>/dev/null | awk \'$3 == "Z"\' | wc -l)"',
        'echo "PROCS $(ls -d /proc/[0-9]* | wc -l)"',
      ].join('\n');
      const r = await sh(mode, script, { workspace: ws, args: RO_PROBE });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^ZOMBIES 0$/m, r.stdout);
      const procs = Number(/^PROCS (\d+)$/m.exec(r.stdout)?.[1]);
      assert.ok(procs <= 6, `processes left in the box after the orphans finished: ${procs}`);
      // Legitimate: a daemon that finishes in time does its work.
      assert.ok(existsSync(path.join(ws, 'early.pid')), 'the short-lived daemon ran');
    });

    test('when the command exits, what it left running dies: background jobs, nohup, setsid daemons', async () => {
      const ws = makeWorkspace('leftover');
      // Each leftover writes its file after LEFT s; the launcher must neither wait for them nor let them finish.
      const LEFT = 8;
      const script = [
        `${shq(probe)} daemonize ${LEFT} ${shq(path.join(ws, 'daemon.pid'))}`,
        `(sleep ${LEFT}; echo x > ${shq(path.join(ws, 'bg.txt'))}) &`,
        `nohup sh -c ${shq(`sleep ${LEFT}; echo x > ${path.join(ws, 'nohup.txt')}`)} > /dev/null 2>&1 &`,
        `setsid sh -c ${shq(`trap "" TERM HUP; sleep ${LEFT}; echo x > ${path.join(ws, 'setsid.txt')}`)} > /dev/null 2>&1 &`,
        'exit 0',
      ].join('\n');
      const t0 = Date.now();
      const r = await sh(mode, script, { workspace: ws, args: RO_PROBE });
      const elapsed = Date.now() - t0;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^RESULT daemonize OK \d+$/m);
      // Not a speed goal: the launcher returned before the leftovers could have finished, so it did not wait for them.
      assert.ok(elapsed < LEFT * 1000, `the launcher waited ${elapsed} ms for processes the command left behind`);
      await sleep(LEFT * 1000 + 1000 - elapsed);
      for (const f of ['daemon.pid', 'bg.txt', 'nohup.txt', 'setsid.txt']) {
        assert.ok(!existsSync(path.join(ws, f)), `${f} was written: a process outlived the command`);
      }
    });

    test('SIGKILL to the launcher kills every process of the box, daemons included', async () => {
      const marker = `lgmark${process.pid}${mode}${Date.now() % 100000}`;
      const ws = makeWorkspace(marker); // the daemon's argv names its pid file in here
      const pidFile = path.join(ws, 'pid');
      const script = [
        `${shq(probe)} daemonize 3 ${shq(pidFile)}`,
        '(trap "" HUP TERM INT; sleep 60) &',
        'setsid sh -c "sleep 60" &',
        'nohup sleep 60 > /dev/null 2>&1 &',
        'echo ready',
        'sleep 60',
      ].join('\n');
      const t0 = Date.now();
      const { child, done } = startBox(mode, { workspace: ws, args: RO_PROBE, cmd: ['/bin/sh', '-c', script, marker], timeoutMs: 20000 });
      const settled = done.catch((e) => e);
      const exited = new Promise((r) => child.on('exit', r));
      let survivors = [];
      try {
        await waitForOutput(child, /^ready$/m);
        const launcherPid = child.pid;
        const hostNs = readlinkSync('/proc/self/ns/pid');
        const marked = hostProcesses(marker, undefined, [launcherPid]);
        assert.ok(marked.some((p) => p.cmdline.includes('daemonize')), `the daemon is running: ${JSON.stringify(marked)}`);
        const boxNs = marked.map((p) => p.ns).find((ns) => ns && ns !== hostNs);
        assert.ok(boxNs, `the box has a PID namespace of its own: ${JSON.stringify(marked)}`);
        // Background jobs may still be starting when "ready" is printed: wait for all.
        let before = [];
        for (const end = Date.now() + 5000; Date.now() < end; await sleep(50)) {
          before = hostProcesses(marker, boxNs, [launcherPid]);
          if (before.length >= 7) break;
        }
        assert.ok(before.length >= 7, `expected init, sh, daemon, 4 sleepers in the box, found ${JSON.stringify(before)}`);

        child.kill('SIGKILL');
        await exited;
        const deadline = Date.now() + 2000;
        do {
          survivors = hostProcesses(marker, boxNs, [launcherPid]);
          if (survivors.length === 0) break;
          await sleep(50);
        } while (Date.now() < deadline);
        assert.deepEqual(survivors, [], 'processes of the box outlived its launcher by 2 s');

        // The daemon would write its pid file 3 s after it started.
        await sleep(Math.max(0, t0 + 4500 - Date.now()));
        assert.ok(!existsSync(pidFile), 'the daemon wrote its pid file after the launcher was killed');
        assert.ok(!(await settled instanceof Error), 'the launcher\'s output pipes were closed (nothing in the box holds them)');
      } finally {
        for (const p of survivors) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    });

    test('a launcher killed with SIGKILL leaves its socket directory; the next launcher removes it and leaves a running one\'s alone', async () => {
      // A TMPDIR of their own (sticky, like /tmp): only these launchers' directories are in it.
      const tmp = mkdtempSync(path.join(os.tmpdir(), 'latchgate-tmp-'));
      chmodSync(tmp, 0o1777);
      tmpDirs.push(tmp);
      const env = { TMPDIR: tmp };
      const wsA = makeWorkspace('stale');
      const a = startBox(mode, { workspace: wsA, env, cmd: ['/bin/sh', '-c', `echo ready; while [ ! -e stop ]; do sleep 0.05; done; [ -S /run/latchgate/gate.sock ] && echo socket-still-there`] });
      await waitForOutput(a.child, /^ready$/m);
      const [nameA] = readdirSync(tmp);
      const b = startBox(mode, { workspace: makeWorkspace('stale'), env, cmd: ['/bin/sh', '-c', 'echo ready; sleep 60'] });
      const bDone = b.done.catch((e) => e);
      await waitForOutput(b.child, /^ready$/m);
      const names = readdirSync(tmp);
      assert.equal(names.length, 2, `one directory per running launcher: ${names}`);
      const dirA = path.join(tmp, nameA);
      const dirB = path.join(tmp, names.find((n) => n !== nameA));

      b.child.kill('SIGKILL');
      await bDone;
      assert.ok(existsSync(dirB), 'SIGKILL left the directory behind');
      const c = await sh(mode, 'true', { workspace: makeWorkspace('stale'), env });
      assert.equal(c.code, 0, c.stderr);
      assert.ok(!existsSync(dirB), 'the next launcher did not remove the stale directory');
      // The running launcher's directory, sockets and all, is untouched.
      assert.deepEqual(readdirSync(tmp), [path.basename(dirA)]);
      assert.ok(lstatSync(path.join(dirA, 'gate.sock')).isSocket());

      writeFileSync(path.join(wsA, 'stop'), '');
      own(path.join(wsA, 'stop'));
      const ra = await a.done;
      assert.equal(ra.code, 0, ra.stderr);
      assert.match(ra.stdout, /^socket-still-there$/m);
      assert.deepEqual(readdirSync(tmp), [], 'a launcher that ends removes its own');
    });

    test('four boxes at once, each on its own workspace, all succeed', async () => {
      const wss = [0, 1, 2, 3].map(() => makeWorkspace('conc'));
      const results = await Promise.all(
        wss.map((ws, i) => sh(mode, `echo "$(hostname) $$ box${i}" > out.txt; sleep 0.3; cat out.txt`, { workspace: ws })),
      );
      results.forEach((r, i) => {
        assert.equal(r.code, 0, `box ${i}: ${r.stderr}`);
        assert.match(r.stdout.trim(), new RegExp(`^latchgate \\d+ box${i}$`), `box ${i}`);
      });
    });

    test('boxes started at once on the same workspace all succeed (two terminals in one project)', async () => {
      // Staggered starts of short commands: one box ends while the next is
      // being built, so launches overlap at every stage.
      for (let round = 0; round < 2; round++) {
        const ws = makeWorkspace('conc1');
        const results = await Promise.all(
          [0, 1, 2, 3, 4, 5].map(async (i) => {
            await sleep(i * 10);
            return sh(mode, `echo box${i} > out${i}.txt; cat out${i}.txt`, { workspace: ws });
          }),
        );
        results.forEach((r, i) => {
          assert.equal(r.code, 0, `round ${round}, box ${i}: exit ${r.code}: ${r.stderr}`);
          assert.equal(r.stdout.trim(), `box${i}`);
        });
      }
    });

    test('a box keeps its protected paths read-only when another box on the same workspace exits', async () => {
      const ws = makeWorkspace('conc2');
      const q = (p) => shq(path.join(ws, p));
      // Box A starts first (and prepares the workspace), box B joins while A runs.
      const a = startBox(mode, { workspace: ws, cmd: ['/bin/sh', '-c', `echo ready; while [ ! -e ${q('b-ready')} ]; do sleep 0.05; done`] });
      await waitForOutput(a.child, /^ready$/m);
      const attempts = {
        vscode: 'mkdir -p .vscode && echo "{}" > .vscode/tasks.json',
        mcp: 'echo "{}" > .mcp.json',
        'claude-commands': 'mkdir -p .claude/commands && echo evil > .claude/commands/evil.md',
        codex: 'mkdir -p .codex && echo evil > .codex/config.toml',
        idea: 'mkdir -p .idea && echo evil > .idea/workspace.xml',
        bashrc: 'echo evil > .bashrc',
        profile: 'echo evil > .profile',
      };
      const tries = Object.entries(attempts)
        .map(([k, cmd]) => `if (${cmd}) 2>/dev/null; then echo "TRY ${k} WROTE"; else echo "TRY ${k} DENIED"; fi`)
        .join('\n');
      const b = startBox(mode, {
        workspace: ws,
        cmd: ['/bin/sh', '-c', `echo ok > ${q('legit.txt')}; touch ${q('b-ready')}; while [ ! -e ${q('a-gone')} ]; do sleep 0.05; done\n${tries}`],
      });
      const ra = await a.done;
      assert.equal(ra.code, 0, ra.stderr);
      writeFileSync(path.join(ws, 'a-gone'), '');
      own(path.join(ws, 'a-gone'));
      const rb = await b.done;
      assert.equal(rb.code, 0, rb.stderr);
      const wrote = rb.stdout.split('\n').filter((l) => / WROTE$/.test(l));
      assert.deepEqual(wrote, [], `box B wrote protected paths after box A exited:\n${rb.stdout}`);
      for (const f of ['.vscode/tasks.json', '.claude/commands/evil.md', '.codex/config.toml', '.idea/workspace.xml']) {
        assert.ok(!existsSync(path.join(ws, f)), `${f} now exists on the host`);
      }
      assert.equal(readFileSync(path.join(ws, 'legit.txt'), 'utf8'), 'ok\n', 'box B writes ordinary files');
    });
  });
}
