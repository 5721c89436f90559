// A test file that never ends (a test waiting on something that never
// comes, a process kept alive by an open handle, a child that never exits)
// would hold the whole run until CI's own timeout, which prints nothing about
// it: node:test reports files in order and keeps back every later file's
// results meanwhile. The watchdog (scripts/run-tests.mjs starts it) looks at
// the runner's processes every few seconds; a file that has run longer than
// its limit is named on stderr with its process tree (state, kernel wait
// channel, command line) and what Node's diagnostic report says it waits on
// (the JavaScript stack, the active handles), then killed with its whole
// tree. node:test then reports that file as failed, with the tests it passed
// before, and the run goes on.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const CLK_TCK = 100; // /proc/<pid>/stat's times are in clock ticks of 1/100 s on Linux

function readOr(path, fallback) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * The fields of /proc/<pid>/stat after the command name, from the state
 * (field 3 in proc(5)) on, or null for a process gone. The name in
 * parentheses may hold spaces and parentheses: they follow the last ')'.
 */
export function statFields(pid) {
  const stat = readOr(`/proc/${pid}/stat`, '');
  return stat ? stat.slice(stat.lastIndexOf(')') + 2).split(' ') : null;
}

/** Every process now: pid → { ppid, state, startTicks }. */
function processes() {
  const all = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(name);
    if (f) all.set(Number(name), { ppid: Number(f[1]), state: f[0], startTicks: Number(f[19]) });
  }
  return all;
}

const commandOf = (pid) => readOr(`/proc/${pid}/cmdline`, '').split('\0').filter(Boolean).join(' ');

/** Handle types every Node process has open: not what a stuck one waits on. */
const ALWAYS_OPEN = new Set(['async', 'check', 'prepare', 'idle', 'loop']);

function subtree(all, root) {
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, p] of all) if (p.ppid === out[i]) out.push(pid);
  return out.filter((pid) => all.has(pid));
}

const uptimeTicks = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * CLK_TCK;

/** What Node's diagnostic report (written on SIGUSR2: scripts/run-tests.mjs's --report-on-signal) says the process waits on, or why there is none. */
async function nodeReport(pid, dir) {
  const before = new Set(readdirSync(dir));
  try {
    process.kill(pid, 'SIGUSR2');
  } catch {
    return '  (no diagnostic report: the process is gone)';
  }
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const file = readdirSync(dir).find((n) => !before.has(n) && n.includes(`.${pid}.`));
    if (!file) continue;
    try {
      const r = JSON.parse(readFileSync(join(dir, file), 'utf8'));
      const stack = (r.javascriptStack?.stack ?? []).slice(0, 12).map((l) => `    ${l.trim()}`);
      const handles = (r.libuv ?? []).filter((h) => h.is_active && !ALWAYS_OPEN.has(h.type));
      return [
        `  JavaScript: ${r.javascriptStack?.message || (stack.length ? '' : 'idle (waiting on the event loop)')}`,
        ...stack,
        `  active handles: ${handles.map((h) => [h.type, h.localEndpoint && JSON.stringify(h.localEndpoint), h.remoteEndpoint && JSON.stringify(h.remoteEndpoint), h.pid && `pid ${h.pid}`, h.signum && `signal ${h.signum}`].filter(Boolean).join(' ')).join('; ') || 'none'}`,
      ].join('\n');
    } catch {
      // still being written
    }
  }
  return '  (no diagnostic report within 3 s: its main thread is blocked outside JavaScript, e.g. in a synchronous child process or system call)';
}

/**
 * Watches the `node --test` process `runner` (pid); a test file's process
 * older than limitSeconds is reported and killed, and every one at killAll(). reportDir is the runner's
 * --report-directory. Returns stop(), killAll() and the files killed.
 */
export function watchTestFiles({ runner, limitSeconds, reportDir, write = (s) => process.stderr.write(s) }) {
  const killed = [];
  const handled = new Set();
  /** The look under way, if any: a periodic one is skipped meanwhile, killAll() comes after it. */
  let current = null;
  const check = (all_ = false) => {
    if (current && !all_) return current;
    const run = (current ?? Promise.resolve())
      .then(() => look(all_))
      .finally(() => {
        if (current === run) current = null;
      });
    current = run;
    return run;
  };
  const look = async (all_) => {
    try {
      const all = processes();
      const now = uptimeTicks();
      for (const [pid, p] of all) {
        if (p.ppid !== runner || handled.has(pid)) continue;
        const file = commandOf(pid)
          .split(' ')
          .find((a) => a.endsWith('.test.mjs'))
          ?.replace(`${process.cwd()}/`, '');
        const age = (now - p.startTicks) / CLK_TCK;
        if (!file || (age < limitSeconds && !all_)) continue;
        handled.add(pid);
        const tree = subtree(all, pid);
        const lines = tree.map((q) => {
          const i = all.get(q);
          return `  pid ${q} (parent ${i.ppid}) state ${i.state}, waiting in ${readOr(`/proc/${q}/wchan`, '?') || '-'}, ${((now - i.startTicks) / CLK_TCK).toFixed(0)} s: ${commandOf(q).slice(0, 300)}`;
        });
        const why = age < limitSeconds ? 'the run was told to stop' : `over the limit of ${limitSeconds} s (LATCHGATE_TEST_FILE_LIMIT_SECONDS)`;
        write(`\nrun-tests: ${file} has run ${age.toFixed(0)} s, ${why}; it is killed, and fails. Its processes:\n${lines.join('\n')}\n${await nodeReport(pid, reportDir)}\n`);
        // Its tree as it is now, not before the report's wait: a process of it gone meanwhile may have left its pid to another.
        const later = processes();
        if (later.get(pid)?.startTicks !== p.startTicks) continue; // it ended meanwhile
        for (const q of subtree(later, pid)) {
          try {
            process.kill(q, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        killed.push(file);
      }
    } catch (e) {
      write(`\nrun-tests: the watchdog could not look at the test processes: ${e?.stack ?? e}\n`);
    }
  };
  const timer = setInterval(() => void check(), Math.min(10, Math.max(1, limitSeconds / 3)) * 1000);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    /** Reports and kills every file still running (the run was told to stop). */
    killAll: () => check(true),
    killed,
  };
}
