// Batching escape-probe calls into one box run: each call is framed by
// CALL/STATUS lines so its RESULT line and exit status can be told apart.
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { makeWorkspace, sh } from './sandbox.mjs';

export const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** A probe argument: a literal, or { raw } for shell text such as "$CHILD". */
const arg = (a) => (typeof a === 'object' ? a.raw : shq(a));

/** Shell text running `probe` once per [key, ...args]. */
export function probeCalls(probe, calls) {
  return calls
    .map(([key, ...args]) => `printf 'CALL %s\\n' ${shq(key)}; ${[probe, ...args].map(arg).join(' ')}; printf 'STATUS %s %s\\n' ${shq(key)} "$?"`)
    .join('\n');
}

export function parseCalls(stdout) {
  const calls = new Map();
  let cur;
  for (const line of stdout.split('\n')) {
    let m;
    if ((m = /^CALL (\S+)$/.exec(line))) {
      cur = { key: m[1], lines: [], status: undefined };
      calls.set(m[1], cur);
    } else if ((m = /^STATUS (\S+) (\d+)$/.exec(line))) {
      const c = calls.get(m[1]);
      if (c) c.status = Number(m[2]);
      cur = undefined;
    } else if (cur && line.startsWith('RESULT ')) {
      cur.lines.push(line);
    }
  }
  return calls;
}

/** Parses one `RESULT <attack> OK|ERR ...` line. */
export function parseResult(line) {
  const f = line.split(' ');
  if (f[2] === 'OK') return { ok: true, extra: f.slice(3), line };
  return { ok: false, err: f[3], errno: Number(f[4]), extra: f.slice(5), line };
}

export function callOf(calls, key, res) {
  const c = calls.get(key);
  assert.ok(c, `probe call ${key} produced no output\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  return c;
}

export function resultOf(calls, key, res) {
  const c = callOf(calls, key, res);
  assert.equal(c.status, 0, `${key}: probe exited ${c.status} (${c.lines.join(' | ')})\nstderr: ${res.stderr}`);
  assert.equal(c.lines.length, 1, `${key}: expected one RESULT line, got ${JSON.stringify(c.lines)}`);
  return parseResult(c.lines[0]);
}

export function expectErr(calls, key, errnos, res) {
  const r = resultOf(calls, key, res);
  assert.ok(!r.ok && errnos.includes(r.err), `${key}: expected ${errnos.join(' or ')}, got: ${r.line}`);
  return r;
}

export function expectOk(calls, key, res) {
  const r = resultOf(calls, key, res);
  assert.ok(r.ok, `${key}: expected OK, got: ${r.line}`);
  return r;
}

/**
 * Runs the calls in one box (plus optional shell before/after, with the
 * probe's directory mounted read-only) and parses them.
 */
export async function runProbes(mode, probe, calls, { workspace, before = '', afterScript = '', args = [], ...opts } = {}) {
  const script = [before, probeCalls(probe, calls), afterScript].filter(Boolean).join('\n');
  const res = await sh(mode, script, { workspace: workspace ?? makeWorkspace('probe'), args: ['--ro', dirname(probe), ...args], timeoutMs: 30000, ...opts });
  assert.equal(res.code, 0, `box failed (exit ${res.code})\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  return { res, calls: parseCalls(res.stdout) };
}
