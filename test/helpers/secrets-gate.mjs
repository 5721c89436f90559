// A real `latchgate up` in a home of its own, for the secrets tests: the
// secret_probe actions (test/fixtures/secrets-manifests) call a local HTTPS
// upstream pinned with [gate.resolve]; the secret comes from
// LATCHGATE_SECRET_PROBE_TOKEN (source 'env') or from a SOPS file written by
// `latchgate secrets init` and `latchgate secrets set` (source 'sops').
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const SECRETS_MANIFESTS = fileURLToPath(new URL('../fixtures/secrets-manifests', import.meta.url));

/**
 * The base64 characters that encode v alone, whatever bytes surround it:
 * inside a longer text v starts at a byte offset of 0, 1 or 2 modulo 3;
 * the characters whose 6 bits all fall inside v are the ones kept.
 */
function base64Core(b, offset, alphabet) {
  const text = Buffer.concat([Buffer.alloc(offset), b]).toString(alphabet);
  return text.slice(Math.ceil((offset * 4) / 3), Math.floor(((offset + b.length) * 4) / 3));
}

/** Every form a value must not appear in. */
export function forms(v) {
  const b = Buffer.from(v);
  const out = {
    plain: v,
    json: JSON.stringify(v).slice(1, -1),
    hex: b.toString('hex'),
    HEX: b.toString('hex').toUpperCase(),
    percent: encodeURIComponent(v),
  };
  for (const alphabet of ['base64', 'base64url']) {
    for (const offset of [0, 1, 2]) out[offset === 0 ? alphabet : `${alphabet}+${offset}`] = base64Core(b, offset, alphabet);
  }
  return out;
}

/** The forms of value found in what (a string or bytes): empty when clean. */
export function leaks(what, value) {
  const text = Buffer.isBuffer(what) ? what.toString('latin1') : String(what);
  return Object.entries(forms(value)).filter(([, f]) => text.includes(f)).map(([kind]) => kind);
}

/**
 * A home with latchgate.toml for the secrets manifests and the upstream;
 * secretsToml: extra lines of a [secrets] section (none: no section).
 */
export function secretsHome(upstream, { secretsToml } = {}) {
  const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-secgate-'));
  chmodSync(home, 0o755);
  const cfgDir = path.join(home, 'config', 'latchgate');
  mkdirSync(cfgDir, { recursive: true });
  const me = process.getuid();
  const user = os.userInfo().username;
  writeFileSync(
    path.join(cfgDir, 'latchgate.toml'),
    [
      '[gate]',
      `manifest_dirs = [${JSON.stringify(SECRETS_MANIFESTS)}]`,
      `extra_ca_certs = [${JSON.stringify(upstream.caFile)}]`,
      '[gate.resolve]',
      `"probe.example.com" = "127.0.0.1:${upstream.port}"`,
      `[identity.principals.${me}]`,
      `name = "${user}"`,
      'scopes = ["tools:call", "audit:read"]',
      `[operators.${user}]`,
      `uid = ${me}`,
      ...(secretsToml ? ['[secrets]', ...secretsToml] : []),
      '',
    ].join('\n'),
  );
  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
  /** Runs the CLI; input goes to its stdin. */
  const lg = (args, { input, extraEnv = {} } = {}) => spawnSync(process.execPath, [CLI, ...args], { env: { ...env, ...extraEnv }, encoding: 'utf8', input: input ?? '', stdio: ['pipe', 'pipe', 'pipe'] });
  return {
    home,
    env,
    user,
    cfgDir,
    sopsFile: path.join(cfgDir, 'secrets.enc.yaml'),
    ageKeyFile: path.join(cfgDir, 'age-key.txt'),
    lg,
    /** `latchgate secrets set NAME` with the value on stdin. */
    setSecret(name, value, args = []) {
      const r = lg(['secrets', 'set', name, ...args], { input: value });
      if (r.status !== 0) throw new Error(`latchgate secrets set ${name}: ${r.stderr}`);
    },
    remove: () => rmSync(home, { recursive: true, force: true }),
  };
}

/**
 * Starts `latchgate up --json` in h; resolves { info, out, proc, stop } once
 * ready, or { exitCode, out } when it exits first.
 */
export async function startUp(h, extraEnv = {}) {
  const out = { stdout: '', stderr: '' };
  const proc = spawn(process.execPath, [CLI, 'up', '--json'], { env: { ...h.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => (out.stdout += d));
  proc.stderr.on('data', (d) => (out.stderr += d));
  const exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  for (let i = 0; i < 2400 && !out.stdout.includes('\n') && proc.exitCode === null; i++) await sleep(25);
  if (!out.stdout.includes('\n')) {
    const exitCode = await Promise.race([exited, sleep(5000).then(() => (proc.kill('SIGKILL'), 'timeout'))]);
    await exited;
    return { exitCode, out };
  }
  return {
    info: JSON.parse(out.stdout.split('\n')[0]),
    out,
    proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
    },
  };
}
