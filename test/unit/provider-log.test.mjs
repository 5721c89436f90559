// The providers' log file in the state directory (src/gate/provider-log.ts):
// one write per call, a size cap with one older file, several gates on one
// file, no write through a link or into another user's file, a failure
// reported once and never thrown at the call; the reader takes only lines of
// the written shape, whatever else the file holds. And `latchgate providers
// logs --follow` prints lines as they are appended, across a rotation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseProviderLog, ProviderLogFile, PROVIDER_LOG, readIfThere } from '../../dist/gate/provider-log.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function tmp(t) {
  const d = mkdtempSync(path.join(os.tmpdir(), 'latchgate-provlog-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const rec = (trace, message, extra = {}) => ({ time: new Date().toISOString(), trace_id: trace, action_id: 'act', principal: 'p', level: 'info', message, fields: [], ...extra });
const lines = (file) => parseProviderLog(readIfThere(file)).records;
const both = (file) => parseProviderLog(`${readIfThere(`${file}.1`)}\n${readIfThere(file)}`).records;

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
  const log = new ProviderLogFile(file, 600);
  t.after(() => log.close());
  for (let i = 0; i < 40; i++) log.append([rec(`t${i}`, 'x'.repeat(50))]);
  assert.ok(statSync(file).size <= 600 && statSync(`${file}.1`).size <= 600);
  assert.ok(!existsSync(`${file}.2`));
  const kept = both(file).map((r) => r.trace_id);
  assert.ok(kept.length >= 4 && kept.length < 40, String(kept.length));
  assert.deepEqual(kept, Array.from({ length: kept.length }, (_, i) => `t${40 - kept.length + i}`));
  // A call whose lines alone pass the cap is written whole, into a file of its own.
  log.append([rec('big', 'y'.repeat(2000))]);
  assert.deepEqual(lines(file).map((r) => r.trace_id), ['big']);
});

test('two gates on one file: a rotation by one moves the other to the new file, no line lost or doubled', (t) => {
  const file = path.join(tmp(t), PROVIDER_LOG);
  const a = new ProviderLogFile(file, 3000);
  const b = new ProviderLogFile(file, 3000);
  t.after(() => (a.close(), b.close()));
  const sent = [];
  for (let i = 0; i < 24; i++) {
    const w = i % 3 === 0 ? b : a;
    w.append([rec(`t${i}`, 'z'.repeat(60))]);
    sent.push(`t${i}`);
  }
  // 24 lines of ~200 bytes: more than one file holds, less than two.
  assert.ok(existsSync(`${file}.1`));
  assert.deepEqual(both(file).map((r) => r.trace_id), sent);
});

test('no write through a link put where the file goes, nor into a file another user owns; reported once, never thrown', (t) => {
  const d = tmp(t);
  const file = path.join(d, PROVIDER_LOG);
  const target = path.join(d, 'elsewhere');
  writeFileSync(target, 'precious\n');
  symlinkSync(target, file);
  const warnings = [];
  const log = new ProviderLogFile(file, undefined, (m) => warnings.push(m));
  t.after(() => log.close());
  log.append([rec('t1', 'one')]);
  log.append([rec('t2', 'two')]);
  assert.equal(readFileSync(target, 'utf8'), 'precious\n');
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0], /1 provider log line\(s\) of trace t1 were lost: .*provider-logs\.jsonl cannot be written \(.*ELOOP.*\)\. Fix: /);
  // Once the file can be written again, the next failure is reported again.
  rmSync(file);
  log.append([rec('t3', 'three')]);
  assert.deepEqual(lines(file).map((r) => r.trace_id), ['t3']);
  if (process.getuid() === 0) {
    log.close();
    chownSync(file, 4242, 4242);
    log.append([rec('t4', 'four')]);
    assert.equal(warnings.length, 2);
    assert.match(warnings[1], /owned by uid 4242, not by this user/);
    assert.deepEqual(lines(file).map((r) => r.trace_id), ['t3']);
  }
});

test('the reader takes only lines of the written shape: anything else is counted, never thrown (random input)', () => {
  const good = JSON.stringify(rec('ok', 'fine'));
  const bad = [
    '', '{', 'null', '[]', '"x"', '{}',
    JSON.stringify({ ...rec('a', 'b'), level: 'fatal' }),
    JSON.stringify({ ...rec('a', 'b'), fields: [['k']] }),
    JSON.stringify({ ...rec('a', 'b'), fields: [['k', 1]] }),
    JSON.stringify({ ...rec('a', 'b'), fields: 'k=v' }),
    JSON.stringify({ ...rec('a', 'b'), trace_id: 7 }),
    JSON.stringify({ ...rec('a', 'b'), message: undefined }),
    good.slice(0, -5),
  ];
  const r = parseProviderLog([good, ...bad, good].join('\n'));
  assert.equal(r.records.length, 2);
  assert.equal(r.unreadable, bad.filter(Boolean).length);
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

test('`providers logs --follow` prints the lines appended after it started, across rotations, and a line cut mid-write only once whole', async (t) => {
  const home = tmp(t);
  const state = path.join(home, 'latchgate');
  const file = path.join(state, PROVIDER_LOG);
  const log = new ProviderLogFile(file, 700);
  t.after(() => log.close());
  (await import('node:fs')).mkdirSync(state, { mode: 0o700 });
  log.append([rec('before', 'old')]);
  const p = spawn(process.execPath, [CLI, 'providers', 'logs', '--follow', '--json'], { env: { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: home, XDG_CONFIG_HOME: path.join(home, 'config') } });
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
  for (let i = 0; i < 8; i++) log.append([rec(`t${i}`, 'w'.repeat(80))]);
  // Three lines to a file: rotated twice between two looks of the follower.
  await until('the lines after, across two rotations', () => seen().length === 9);
  assert.ok(existsSync(`${file}.1`));
  // Half a line, then its rest: printed once, whole.
  const half = JSON.stringify(rec('split', 'é'.repeat(20))) + '\n';
  const bytes = Buffer.from(half);
  const { appendFileSync } = await import('node:fs');
  appendFileSync(file, bytes.subarray(0, 31));
  await new Promise((r) => setTimeout(r, 600));
  appendFileSync(file, bytes.subarray(31));
  await until('the split line', () => seen().includes('split'));
  assert.deepEqual(seen(), ['before', ...Array.from({ length: 8 }, (_, i) => `t${i}`), 'split']);
  assert.equal(JSON.parse(out.trim().split('\n').at(-1)).message, 'é'.repeat(20));
  assert.equal(err, '');
});
