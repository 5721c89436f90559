// The providers' log file in the state directory (src/gate/provider-log.ts):
// one write per call, starting on a line of its own; a size cap with one
// older file that holds even when the rename fails, one rotation at a time
// across gates; caps per call and per principal with a note of what was
// dropped; no write through a symlink, a hard link, a FIFO or into another
// user's file; a failure reported once and never thrown at the call. The
// reader takes only lines of the written shape. And `latchgate providers
// logs`: quoted and escaped text, cut at a terminal's width, and --follow
// printing every line once, across rotations and lines cut mid-write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseProviderLog, ProviderLogFile, PROVIDER_LOG } from '../../dist/gate/provider-log.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function tmp(t) {
  const d = mkdtempSync(path.join(os.tmpdir(), 'latchgate-provlog-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const rec = (trace, message, extra = {}) => ({ time: new Date().toISOString(), trace_id: trace, action_id: 'act', principal: 'p', level: 'info', message, fields: [], ...extra });
const read = (file) => (existsSync(file) ? readFileSync(file, 'utf8') : '');
const lines = (file) => parseProviderLog(read(file)).records;
const both = (file) => parseProviderLog(`${read(`${file}.1`)}\n${read(file)}`).records;
const quiet = () => {
  const warnings = [];
  return { warnings, warn: (m) => warnings.push(m) };
};

test("one call's lines are appended in one piece, owner-only; a text with newlines and controls stays one line each", (t) => {
  const file = path.join(tmp(t), PROVIDER_LOG);
  const log = new ProviderLogFile(file);
  t.after(() => log.close());
  log.append([rec('t1', 'a\nb\u001b[2J'), rec('t1', 'second', { level: 'error', fields: [['k', 'v\n']] })]);
  log.append([]);
  log.append([rec('t2', 'third')]);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(readFileSync(file, 'utf8').split('\n').length, 4); // three lines and the last newline
  assert.deepEqual(lines(file).map((r) => [r.trace_id, r.message, r.level, r.fields]), [['t1', 'a\nb\u001b[2J', 'info', []], ['t1', 'second', 'error', [['k', 'v\n']]], ['t2', 'third', 'info', []]]);
});

test('past its cap the file becomes .1 (the one before dropped): the two files hold the newest lines, in order', (t) => {
  const file = path.join(tmp(t), PROVIDER_LOG);
  const log = new ProviderLogFile(file, { maxBytes: 600 });
  t.after(() => log.close());
  for (let i = 0; i < 40; i++) log.append([rec(`t${i}`, 'x'.repeat(50))]);
  assert.ok(statSync(file).size <= 600 && statSync(`${file}.1`).size <= 600);
  assert.ok(!existsSync(`${file}.2`) && !existsSync(`${file}.lock`));
  const kept = both(file).map((r) => r.trace_id);
  assert.ok(kept.length >= 4 && kept.length < 40, String(kept.length));
  assert.deepEqual(kept, Array.from({ length: kept.length }, (_, i) => `t${40 - kept.length + i}`));
  // A call whose lines alone pass the cap is written whole, into a file of its own.
  log.append([rec('big', 'y'.repeat(2000))]);
  assert.deepEqual(lines(file).map((r) => r.trace_id), ['big']);
});

test('when the rename cannot be done the cap still holds: an eighth past it, then nothing, reported once', (t) => {
  const file = path.join(tmp(t), PROVIDER_LOG);
  mkdirSync(`${file}.1`);
  writeFileSync(path.join(`${file}.1`, 'x'), 'x');
  const q = quiet();
  const log = new ProviderLogFile(file, { maxBytes: 8000 }, q.warn);
  t.after(() => log.close());
  for (let i = 0; i < 200; i++) log.append([rec(`t${i}`, 'z'.repeat(100))]);
  assert.ok(statSync(file).size <= 9000, String(statSync(file).size));
  assert.equal(q.warnings.length, 2, q.warnings.join('\n'));
  assert.match(q.warnings[0], /provider-logs\.jsonl is full and cannot be renamed to .*provider-logs\.jsonl\.1 \(.*\): past an eighth more its lines are dropped\. Fix: remove what is at /);
  assert.match(q.warnings[1], /provider log lines of trace t\d+ were lost: .* cannot be written \(it holds \d+ bytes, past its cap of 8000, and could not be renamed to .*\.1\)/);
  // Once it can be renamed, the lines go on.
  rmSync(`${file}.1`, { recursive: true });
  log.append([rec('after', 'ok')]);
  assert.deepEqual(lines(file).map((r) => r.trace_id), ['after']);
});

test('two gates on one file: a rotation by one moves the other to the new file; a held lock makes the other write on, a stale one is cleared', (t) => {
  const file = path.join(tmp(t), PROVIDER_LOG);
  const a = new ProviderLogFile(file, { maxBytes: 3000 });
  const b = new ProviderLogFile(file, { maxBytes: 3000 });
  t.after(() => (a.close(), b.close()));
  const sent = [];
  for (let i = 0; i < 24; i++) {
    (i % 3 === 0 ? b : a).append([rec(`t${i}`, 'z'.repeat(40))]);
    sent.push(`t${i}`);
  }
  // 24 lines of ~170 bytes: more than one file holds, less than two.
  assert.ok(existsSync(`${file}.1`));
  assert.deepEqual(both(file).map((r) => r.trace_id), sent);
  // Another gate renaming now (its lock): this one neither renames nor waits.
  const older = read(`${file}.1`);
  writeFileSync(`${file}.lock`, '');
  for (let i = 0; i < 3; i++) a.append([rec(`held${i}`, 'z'.repeat(40))]);
  assert.equal(read(`${file}.1`), older, 'no rename while another gate holds the lock');
  assert.deepEqual(lines(file).slice(-3).map((r) => r.trace_id), ['held0', 'held1', 'held2']);
  // A lock its gate left when it died: cleared, and the rotation happens.
  utimesSync(`${file}.lock`, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  for (let i = 0; i < 30 && existsSync(`${file}.lock`); i++) a.append([rec(`s${i}`, 'z'.repeat(40))]);
  a.append([rec('last', 'z'.repeat(40))]);
  assert.ok(!existsSync(`${file}.lock`));
  assert.ok(read(`${file}.1`).includes('"held2"'), 'rotated after the stale lock went');
});

test('caps per call and per principal: the lines past them are dropped, and a note of the gate says how many', (t) => {
  const file = path.join(tmp(t), PROVIDER_LOG);
  const log = new ProviderLogFile(file, { callBytes: 1000, principalBytesPerMinute: 3000 });
  t.after(() => log.close());
  // JSON escaping multiplies a control character by six: the cap counts bytes written.
  log.append(Array.from({ length: 20 }, (_, i) => rec('big', '\u0001'.repeat(30), { fields: [['i', String(i)]] })));
  const big = lines(file);
  assert.ok(readFileSync(file).length <= 1000 + 300);
  assert.ok(big.length >= 3 && big.length < 20, String(big.length));
  assert.deepEqual({ ...big.at(-1), time: 0 }, { ...rec('big', `latchgate: ${20 - (big.length - 1)} log line(s) dropped: this call logged more than 1000 bytes`), level: 'warn', time: 0 });
  // Principal p has spent most of its minute: its next calls are dropped, another principal's are not.
  for (let i = 0; i < 30; i++) log.append([rec(`p${i}`, 'x'.repeat(100))]);
  log.append([rec('q0', 'other', { principal: 'q' })]);
  const after = lines(file).slice(big.length);
  const mine = after.filter((r) => r.principal === 'p');
  assert.ok(mine.length > 5 && mine.length < 30, String(mine.length));
  assert.ok(after.some((r) => r.principal === 'q'));
  // A minute later it may write again, with the count of what was dropped first.
  const realNow = Date.now;
  Date.now = () => realNow() + 61_000;
  try {
    log.append([rec('later', 'back')]);
  } finally {
    Date.now = realNow;
  }
  const last = lines(file).slice(-2);
  assert.deepEqual(last.map((r) => [r.trace_id, r.level]), [['later', 'info'], ['later', 'warn']]);
  assert.match(last[1].message, new RegExp(`^latchgate: ${30 - mine.length} log line\\(s\\) dropped: principal p's calls logged more than 3000 bytes a minute$`));
});

test('no write through a symlink, a hard link, a FIFO or into a file another user owns; reported once, never thrown, never blocking', (t) => {
  const d = tmp(t);
  const file = path.join(d, PROVIDER_LOG);
  const target = path.join(d, 'elsewhere');
  writeFileSync(target, 'precious\n');
  symlinkSync(target, file);
  const q = quiet();
  const log = new ProviderLogFile(file, {}, q.warn);
  t.after(() => log.close());
  log.append([rec('t1', 'one')]);
  log.append([rec('t2', 'two')]);
  assert.equal(readFileSync(target, 'utf8'), 'precious\n');
  assert.equal(q.warnings.length, 1, q.warnings.join('\n'));
  assert.match(q.warnings[0], /provider log lines of trace t1 were lost: .*provider-logs\.jsonl cannot be written \(.*ELOOP.*\)\. Fix: /);
  // A hard link to a file elsewhere: refused too (it would be appended to).
  rmSync(file);
  linkSync(target, file);
  log.append([rec('t3', 'three')]);
  assert.equal(readFileSync(target, 'utf8'), 'precious\n');
  // A FIFO: the open fails at once instead of waiting for a reader.
  rmSync(file);
  execFileSync('mkfifo', [file]);
  log.append([rec('t4', 'four')]);
  rmSync(file);
  // Once the file can be written again, it is, owner-only whatever mode it had.
  writeFileSync(file, '', { mode: 0o644 });
  chmodSync(file, 0o644);
  log.append([rec('t5', 'five')]);
  assert.deepEqual(lines(file).map((r) => r.trace_id), ['t5']);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  if (process.getuid() === 0) {
    log.close();
    chownSync(file, 4242, 4242);
    q.warnings.length = 0;
    log.append([rec('t6', 'six')]);
    assert.equal(q.warnings.length, 1);
    assert.match(q.warnings[0], /owned by uid 4242, not by this user/);
    assert.deepEqual(lines(file).map((r) => r.trace_id), ['t5']);
  }
});

test('after a write cut short (a full disk), the next call starts on a line of its own', (t) => {
  const file = path.join(tmp(t), PROVIDER_LOG);
  const log = new ProviderLogFile(file);
  t.after(() => log.close());
  log.append([rec('t1', 'one')]);
  appendFileSync(file, JSON.stringify(rec('torn', 'cut')).slice(0, 40));
  log.append([rec('t2', 'two'), rec('t2', 'three')]);
  const r = parseProviderLog(read(file));
  assert.deepEqual(r.records.map((x) => x.message), ['one', 'two', 'three']);
  assert.equal(r.unreadable, 1);
});

test('the reader takes only lines of the written shape: anything else is counted, never thrown (random input)', () => {
  const good = JSON.stringify(rec('ok', 'fine'));
  const bad = [
    '{', 'null', '[]', '"x"', '{}',
    JSON.stringify({ ...rec('a', 'b'), level: 'fatal' }),
    JSON.stringify({ ...rec('a', 'b'), fields: [['k']] }),
    JSON.stringify({ ...rec('a', 'b'), fields: [['k', 1]] }),
    JSON.stringify({ ...rec('a', 'b'), fields: 'k=v' }),
    JSON.stringify({ ...rec('a', 'b'), trace_id: 7 }),
    JSON.stringify({ ...rec('a', 'b'), message: undefined }),
    JSON.stringify({ ...rec('a', 'b'), time: '\u001b]0;title\u0007' }),
    JSON.stringify({ ...rec('a', 'b'), time: 'yesterday' }),
    good.slice(0, -5),
  ];
  const r = parseProviderLog([good, ...bad, '', good].join('\n'));
  assert.equal(r.records.length, 2);
  assert.equal(r.unreadable, bad.length);
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const alphabet = ['{', '}', '[', ']', '"', ':', ',', '\n', 'a', '1', '\\', 'u', '\u0000', '\u202e', 'trace_id', 'level', 'info', 'fields', good];
  for (let i = 0; i < 2000; i++) {
    let s = '';
    for (let k = Math.floor(rand() * 30); k > 0; k--) s += alphabet[Math.floor(rand() * alphabet.length)];
    const out = parseProviderLog(s);
    for (const x of out.records) assert.deepEqual(Object.keys(x).sort(), ['action_id', 'fields', 'level', 'message', 'principal', 'time', 'trace_id']);
  }
});

/** A state directory at home/latchgate and the environment of a CLI whose default it is. */
function stateHome(t) {
  const home = tmp(t);
  const state = path.join(home, 'latchgate');
  mkdirSync(state, { mode: 0o700 });
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: home, XDG_CONFIG_HOME: path.join(home, 'config') };
  return { file: path.join(state, PROVIDER_LOG), env };
}

test("text output: the provider's text quoted and escaped, every printed field escaped; on a terminal cut at its width, so no line wraps into what looks like another", (t) => {
  const { file, env } = stateHome(t);
  const log = new ProviderLogFile(file);
  t.after(() => log.close());
  const padded = `open${' '.repeat(70)}2026-01-01T00:00:00.000Z error deploy operator 0b7e "forged"`;
  log.append([rec('t1', padded, { fields: [['k"', 'v\u3164\u0007']] })]);
  // A line another writer put there (the reader checks the time's shape; the rest it escapes).
  appendFileSync(file, `${JSON.stringify(rec('\u001b]0;x\u0007', 'm', { action_id: 'a\u202e' }))}\n`);
  const plain = spawnSync(process.execPath, [CLI, 'providers', 'logs'], { env, encoding: 'utf8' });
  assert.equal(plain.status, 0, plain.stderr);
  const [one, two] = plain.stdout.split('\n');
  assert.ok(one.endsWith(` "${padded.replace(/"/g, '\\"')}" "k\\""="v\\u{3164}\\u{7}"`), one);
  assert.ok(two.includes(' a\\u{202e} p \\u{1b}]0;x\\u{7} "m"'), two);
  assert.ok(!/[\u0000-\u0009\u000b-\u001f\u202e\u3164]/.test(plain.stdout));
  // On a terminal of 80 columns (script(1) gives the CLI one): the long line is cut, and stderr says so.
  const tty = spawnSync('script', ['-qec', `stty cols 80; ${process.execPath} ${CLI} providers logs`, '/dev/null'], { env, encoding: 'utf8' });
  assert.equal(tty.status, 0, tty.stdout + tty.stderr);
  const rows = tty.stdout.split(/\r?\n/).filter((l) => l.startsWith('20'));
  assert.equal(rows.length, 2, tty.stdout);
  for (const row of rows) assert.ok([...row].length <= 80, row);
  assert.ok(rows[0].endsWith('…'), rows[0]);
  assert.ok(!rows[0].includes('forged'), rows[0]);
  assert.match(tty.stdout, /1 line\(s\) cut at the terminal's width; --json prints them whole/);
  // A terminal that tells no width (a serial console): cut at 80 columns all the same.
  const unknown = spawnSync('script', ['-qec', `stty cols 0 rows 0; ${process.execPath} ${CLI} providers logs`, '/dev/null'], { env, encoding: 'utf8' });
  const unknownRows = unknown.stdout.split(/\r?\n/).filter((l) => l.startsWith('20'));
  assert.equal(unknownRows.length, 2, unknown.stdout);
  for (const row of unknownRows) assert.ok([...row].length <= 80, row);
  // A character that passes for a quote cannot fake the end of the provider's text.
  log.append([rec('t3', 'a\u201c b\uff02')]);
  assert.ok(spawnSync(process.execPath, [CLI, 'providers', 'logs', '--trace-id', 't3'], { env, encoding: 'utf8' }).stdout.includes(' "a\\u{201c} b\\u{ff02}"'));
});

test('`providers logs --follow` prints every line appended after it started once: across two rotations between two looks, lines appended just before a rotation, a line cut mid-write, a file removed and made again', async (t) => {
  const { file, env } = stateHome(t);
  const log = new ProviderLogFile(file, { maxBytes: 700 });
  t.after(() => log.close());
  log.append([rec('before', 'old')]);
  const p = spawn(process.execPath, [CLI, 'providers', 'logs', '--follow', '--json'], { env });
  t.after(() => p.kill('SIGKILL'));
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  const seen = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l).trace_id);
  const until = async (what, ok) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(ok(), `${what}: printed ${JSON.stringify(seen())} ${err}`);
  };
  await until('the line before', () => seen().includes('before'));
  // Three lines to a file: rotated twice between two looks of the follower.
  for (let i = 0; i < 8; i++) log.append([rec(`t${i}`, 'w'.repeat(80))]);
  await until('the lines after, across two rotations', () => seen().length === 9);
  assert.ok(existsSync(`${file}.1`));
  // Half a line, then its rest: printed once, whole (a character cut in two included).
  const bytes = Buffer.from(`${JSON.stringify(rec('split', 'é'.repeat(20)))}\n`);
  const at = bytes.indexOf('é') + 1;
  appendFileSync(file, bytes.subarray(0, at));
  await new Promise((r) => setTimeout(r, 600));
  appendFileSync(file, bytes.subarray(at));
  await until('the split line', () => seen().includes('split'));
  // The operator removes the file; a gate makes it again: .1 is not printed again.
  rmSync(file);
  log.append([rec('remade', 'new')]);
  await until('the line of the new file', () => seen().includes('remade'));
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(seen(), ['before', ...Array.from({ length: 8 }, (_, i) => `t${i}`), 'split', 'remade']);
  assert.equal(JSON.parse(out.trim().split('\n').at(-2)).message, 'é'.repeat(20));
  assert.equal(err, '');
});

test('`providers logs` on a FIFO put where the file goes: an error, not a hang', (t) => {
  const { file, env } = stateHome(t);
  execFileSync('mkfifo', [`${file}.1`]);
  const r = spawnSync(process.execPath, [CLI, 'providers', 'logs'], { env, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.signal, null, 'it hung');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /provider-logs\.jsonl\.1 is not a regular file/);
});
