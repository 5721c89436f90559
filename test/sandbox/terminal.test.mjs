// B.8 with a real terminal: tmux runs the launcher in a pane; we type into it
// and read the screen. The box gets a fresh PTY of its own: the right size,
// resizes delivered (SIGWINCH), Ctrl-C as SIGINT, host settings restored.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, distDir, testUser } from '../helpers/sandbox.mjs';
import { buildEscapeProbe } from '../helpers/escape-probe.mjs';

after(cleanupWorkspaces);
const socketName = `lgtest-${process.pid}`;
const tmux = (...args) => execFileSync('tmux', ['-L', socketName, ...args], { encoding: 'utf8' });
after(() => {
  try {
    tmux('kill-server');
  } catch {
    // already gone
  }
});

async function screenMatching(session, re, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  let screen = '';
  while (Date.now() < end) {
    screen = tmux('capture-pane', '-p', '-t', session);
    if (re.test(screen)) return screen;
    await sleep(100);
  }
  assert.fail(`screen never matched ${re}:\n${screen}`);
}

for (const mode of MODES) {
  test(`[${mode}] interactive shell on a fresh PTY: size, resize, Ctrl-C, restored terminal`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('tty');
    const probe = await buildEscapeProbe();
    const u = testUser();
    const asUser = mode === 'user' && process.getuid() === 0 ? `setpriv --reuid=${u.uid} --regid=${u.gid} --clear-groups ` : '';
    const cli = path.join(distDir(mode), 'cli', 'main.js');
    const session = `box-${mode}`;
    const script = `cd ${ws} && stty -g > ${ws}/.stty-before; ${asUser}${process.execPath} ${cli} sandbox --ro ${path.dirname(probe)} -- /bin/bash --norc --noprofile; echo "EXITED:$?"; stty -g > ${ws}/.stty-after; sleep 60`;
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', `/bin/sh -c '${script}'`);

    // The box's prompt (PS1 from its environment: --norc reads no rc file to change it).
    await screenMatching(session, new RegExp(`^\\[latchgate\\] ${u.name}@latchgate:${ws}\\$\\s*$`, 'm'));
    tmux('send-keys', '-t', session, 'tty; stty size', 'Enter');
    await screenMatching(session, /^\/dev\/pts\/0\n40 120$/m);

    // A full-screen program learns of the resize through SIGWINCH.
    tmux('send-keys', '-t', session, 'clear; python3 -c "import signal,os,time; signal.signal(signal.SIGWINCH, lambda *a: print(\'WINCH\', os.get_terminal_size())); print(\'READY\'); time.sleep(10)"', 'Enter');
    await screenMatching(session, /^READY$/m);
    tmux('resize-window', '-t', session, '-x', '90', '-y', '20');
    await screenMatching(session, /WINCH os\.terminal_size\(columns=90, lines=20\)/);
    tmux('send-keys', '-t', session, 'C-c');
    await screenMatching(session, /KeyboardInterrupt/);

    // Ctrl-C reaches the foreground job as SIGINT (exit 130), the shell survives.
    tmux('send-keys', '-t', session, 'clear; sleep 100', 'Enter');
    await sleep(300);
    tmux('send-keys', '-t', session, 'C-c');
    tmux('send-keys', '-t', session, 'echo "rc=$?"', 'Enter');
    await screenMatching(session, /^rc=130$/m);

    // Input injection into the terminal is refused even on the box's own PTY.
    tmux('send-keys', '-t', session, `clear; ${probe} tiocsti 0; ${probe} tiocsti-hi 0; ${probe} tioclinux 0`, 'Enter');
    const inj = await screenMatching(session, /RESULT tioclinux/);
    assert.match(inj, /RESULT tiocsti ERR EPERM 1/);
    assert.match(inj, /RESULT tiocsti-hi ERR EPERM 1/);
    assert.match(inj, /RESULT tioclinux ERR EPERM 1/);

    tmux('send-keys', '-t', session, 'exit 4', 'Enter');
    await screenMatching(session, /^EXITED:4$/m);
    await sleep(200);
    assert.equal(readFileSync(`${ws}/.stty-after`, 'utf8'), readFileSync(`${ws}/.stty-before`, 'utf8'), 'host terminal settings restored');
    tmux('kill-session', '-t', session);
  });
}
