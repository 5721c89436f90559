// Trust of configuration files (config/trust.ts, cli/trust.ts): a file that
// grants more than the defaults is refused (125, with the diff and the
// command) by every command that loads configuration until `latchgate trust`
// records its exact content; narrowing files and the user-level config need
// no trust; the trust store is written privately and refused when others
// could have written it. Runs the CLI with --dry-run (no box); the boxes
// themselves are in test/sandbox/trust.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../../dist/core/errors.js';
import { readTrustStore, writeTrustStore } from '../../dist/config/trust-store.js';
import { assertLaunchError, isRoot, tempDir } from '../fixtures/unit/helpers.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** A home with its own XDG directories and a project workspace. */
function setup(t) {
  const h = tempDir(t, 'latchgate-trust-');
  const ws = join(h, 'ws');
  mkdirSync(join(ws, '.latchgate'), { recursive: true });
  const env = { PATH: '/usr/bin:/bin', HOME: h, XDG_STATE_HOME: join(h, 'state'), XDG_CONFIG_HOME: join(h, 'cfg'), XDG_RUNTIME_DIR: join(h, 'run') };
  const lg = (args, { cwd = ws, extra = {} } = {}) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { cwd, env: { ...env, ...extra }, encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  return { h, ws, env, lg, project: join(ws, '.latchgate', 'latchgate.toml'), store: join(h, 'state', 'latchgate', 'trusted-configs.json') };
}

/** The exact `latchgate trust ...` command a refusal prints, as argv. */
function trustArgs(stderr) {
  const m = /^ {2}latchgate (trust --sha256 [0-9a-f]{64} \S+)$/m.exec(stderr);
  assert.ok(m, `the refusal names the command to trust the file:\n${stderr}`);
  return m[1].split(' ');
}

const dryRun = (s, args = [], opts) => s.lg(['sandbox', ...args, '--dry-run', '--', 'true'], opts);
const rwMounts = (plan) => plan.mounts.filter((m) => m.kind === 'bind' && !m.readonly).map((m) => m.path);

test('a project config that grants more is refused until trusted; a change is refused with the diff; removal refuses it again', (t) => {
  const s = setup(t);
  const extra = join(s.h, 'extra');
  mkdirSync(extra);
  writeFileSync(s.project, `[sandbox.agent]\nrw_mounts = [${JSON.stringify(extra)}]\nallow_hosts = ["x.example.com"]\n`);

  const first = dryRun(s);
  assert.equal(first.code, 125, first.err);
  assert.equal(first.out, '', 'nothing ran: no plan printed');
  assert.match(first.err, new RegExp(`project config ${s.project} is not trusted and grants more than the defaults`));
  assert.match(first.err, new RegExp(`^ {2}\\+ rw_mounts: ${extra}$`, 'm'));
  assert.match(first.err, /^ {2}\+ allow_hosts: x\.example\.com$/m);

  const trusted = s.lg(trustArgs(first.err));
  assert.equal(trusted.code, 0, trusted.err);
  assert.equal(statSync(s.store).mode & 0o777, 0o600, 'the trust store is private');
  assert.equal(statSync(join(s.h, 'state', 'latchgate')).mode & 0o777, 0o700);
  const ok = dryRun(s);
  assert.equal(ok.code, 0, ok.err + ok.out.slice(0, 300));
  assert.ok(rwMounts(JSON.parse(ok.out)).includes(extra), 'the trusted file is used');

  // Standing in for a box that wrote the file in an earlier run.
  const more = join(s.h, 'more');
  mkdirSync(more);
  writeFileSync(s.project, `[sandbox.agent]\nrw_mounts = [${JSON.stringify(extra)}, ${JSON.stringify(more)}]\n`);
  const changed = dryRun(s);
  assert.equal(changed.code, 125);
  assert.equal(changed.out, '');
  assert.match(changed.err, /changed since you trusted it/);
  assert.match(changed.err, new RegExp(`^ {2}\\+ rw_mounts: ${more}$`, 'm'));
  assert.match(changed.err, new RegExp(`^ {4}rw_mounts: ${extra}$`, 'm'), 'unchanged grants are shown as context');
  assert.match(changed.err, /^ {2}- allow_hosts: x\.example\.com$/m);

  const listed = JSON.parse(s.lg(['trust', '--list', '--json']).out);
  assert.deepEqual(listed.configs.map((c) => [c.file, c.status]), [[s.project, 'changed']]);
  assert.equal(s.lg(trustArgs(changed.err)).code, 0);
  assert.equal(JSON.parse(s.lg(['trust', '--list', '--json']).out).configs[0].status, 'trusted');
  assert.equal(dryRun(s).code, 0);

  const removed = s.lg(['trust', '--remove', '--json']);
  assert.equal(removed.code, 0, removed.err);
  assert.equal(JSON.parse(removed.out).status, 'removed');
  assert.deepEqual(JSON.parse(s.lg(['trust', '--list', '--json']).out).configs, []);
  assert.equal(dryRun(s).code, 125, 'refused again after removal');
  assert.equal(s.lg(['trust', '--remove']).code, 1, 'nothing left to remove');
});

test('--sha256: only the content that was shown is trusted', (t) => {
  const s = setup(t);
  writeFileSync(s.project, '[sandbox.agent]\nallow_hosts = ["a.example.com"]\n');
  const shown = trustArgs(dryRun(s).err);
  appendFileSync(s.project, 'pass_env = ["AWS_SECRET_ACCESS_KEY"]\n');
  const r = s.lg(shown);
  assert.equal(r.code, 125);
  assert.match(r.err, /its content changed since you were shown it.*nothing was trusted/);
  assert.equal(existsSync(s.store), false, 'nothing recorded');
  assert.equal(dryRun(s).code, 125);
});

test('a file that only narrows (limits, strict_net, default ports, a workspace inside the project) needs no trust', (t) => {
  const s = setup(t);
  writeFileSync(s.project, `[sandbox.agent]\nworkspace = ${JSON.stringify(s.ws)}\n\n[sandbox.limits]\nnofile = 1024\nnproc = 512\n\n[sandbox.network]\nallow_ports = [443]\n`);
  const r = dryRun(s);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).rlimits.find((l) => l.name === 'nofile').soft, 1024, 'the file is used');
  const tr = s.lg(['trust', '--json']);
  assert.equal(JSON.parse(tr.out).status, 'grant-free');
  assert.equal(existsSync(s.store), false);
  // The same file with a workspace outside the project grants it.
  writeFileSync(s.project, `[sandbox.agent]\nworkspace = ${JSON.stringify(s.h)}\n`);
  const out = dryRun(s);
  assert.equal(out.code, 125);
  assert.match(out.err, new RegExp(`\\+ workspace: ${s.h}$`, 'm'));
});

test('the user-level config needs no trust, also when named with --config', (t) => {
  const s = setup(t);
  const extra = join(s.h, 'extra');
  mkdirSync(extra);
  const user = join(s.h, 'cfg', 'latchgate', 'latchgate.toml');
  mkdirSync(join(s.h, 'cfg', 'latchgate'), { recursive: true });
  writeFileSync(user, `[sandbox.agent]\nrw_mounts = [${JSON.stringify(extra)}]\n`);
  for (const args of [[], ['--config', user]]) {
    // From the home directory (no project config there); the workspace is the project inside it.
    const r = dryRun(s, ['--workspace', s.ws, ...args], { cwd: s.h });
    assert.equal(r.code, 0, r.err);
    assert.ok(rwMounts(JSON.parse(r.out)).includes(extra));
  }
  assert.equal(JSON.parse(s.lg(['trust', '--json', user]).out).status, 'user-config');
  // Only while it is the user's own: writable by others, it needs trust like any other file.
  chmodSync(user, 0o666);
  const shared = dryRun(s, ['--workspace', s.ws], { cwd: s.h });
  assert.equal(shared.code, 125);
  assert.match(shared.err, /user config .* is not trusted/);
  chmodSync(user, 0o644);
  // A copy of it elsewhere is not the user's config.
  const copy = join(s.ws, 'copy.toml');
  writeFileSync(copy, readFileSync(user));
  assert.equal(dryRun(s, ['--config', copy]).code, 125);
});

test('--config, $LATCHGATE_CONFIG and --sandbox-config files are refused until trusted, each named by where it came from', (t) => {
  const s = setup(t);
  mkdirSync(join(s.ws, 'ci'));
  const cfg = join(s.ws, 'ci', 'latchgate.toml');
  writeFileSync(cfg, `[sandbox.network]\nextra_ca_certs = ["ca.pem"]\n`);
  const fromEnv = join(s.ws, 'env.toml');
  writeFileSync(fromEnv, `[sandbox.network.resolve]\n"api.example.com" = "127.0.0.1:1"\n`);
  const sc = join(s.ws, 'agent.toml');
  const sdk = join(s.h, 'sdk');
  mkdirSync(sdk);
  writeFileSync(sc, `ro_mounts = [${JSON.stringify(sdk)}]\npass_env = ["GOFLAGS"]\n`);
  const cases = [
    [['--config', 'ci/latchgate.toml'], {}, `--config ${cfg} is not trusted`, `+ extra_ca_certs: ${join(s.ws, 'ci', 'ca.pem')}`],
    [[], { LATCHGATE_CONFIG: fromEnv }, `$LATCHGATE_CONFIG ${fromEnv} is not trusted`, '+ resolve."api.example.com": 127.0.0.1:1'],
    [['--sandbox-config', sc], {}, `--sandbox-config ${sc} is not trusted`, '+ pass_env: GOFLAGS'],
  ];
  for (const [args, extra, says, grant] of cases) {
    const r = dryRun(s, args, { extra });
    assert.equal(r.code, 125, r.err);
    assert.ok(r.err.includes(says), r.err);
    assert.ok(r.err.includes(grant), r.err);
    assert.equal(r.out, '');
    assert.equal(s.lg(trustArgs(r.err)).code, 0);
  }
  // Trusted as they are now, each is used (extra_ca_certs only has to exist when a route uses it).
  const sandboxOnly = dryRun(s, ['--sandbox-config', sc]);
  assert.equal(sandboxOnly.code, 0, sandboxOnly.err);
  assert.ok(JSON.parse(sandboxOnly.out).mounts.some((m) => m.path === sdk && m.readonly));
  const listed = JSON.parse(s.lg(['trust', '--list', '--json']).out).configs;
  assert.deepEqual(listed.map((c) => c.file).sort(), [sc, cfg, fromEnv].sort());
  // A trusted file that is gone is listed as missing, and its record can still be removed.
  rmSync(fromEnv);
  assert.equal(JSON.parse(s.lg(['trust', '--list', '--json']).out).configs.find((c) => c.file === fromEnv).status, 'missing');
  assert.equal(s.lg(['trust', '--remove', fromEnv]).code, 0);
  assert.deepEqual(JSON.parse(s.lg(['trust', '--list', '--json']).out).configs.map((c) => c.file).sort(), [sc, cfg].sort());
});

test('latchgate up and the gate commands refuse an untrusted project config before doing anything', async (t) => {
  const s = setup(t);
  mkdirSync(join(s.ws, '.latchgate', 'manifests'));
  writeFileSync(s.project, `[gate]\nmanifest_dirs = ["manifests"]\n\n[operators.intruder]\nuid = 4242\n`);
  for (const args of [['status', '--json'], ['audit', '--json'], ['policy', 'grant', 'anyone', 'http_fetch'], ['revoke']]) {
    const r = s.lg(args);
    assert.equal(r.code, 125, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /project config .* is not trusted/);
    assert.match(r.err, /\+ operators\.intruder\.uid: 4242/);
    assert.equal(r.out, '');
  }
  const up = spawn(process.execPath, [CLI, 'up', '--json'], { cwd: s.ws, env: s.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  up.stderr.on('data', (d) => (err += d));
  const code = await new Promise((r) => up.on('exit', r));
  assert.equal(code, 125, err);
  assert.match(err, /project config .* is not trusted/);
  assert.equal(existsSync(join(s.h, 'run', 'latchgate', 'gate.sock')), false, 'the gate never started');
  assert.equal(existsSync(join(s.h, 'state', 'latchgate', 'ledger.sqlite3')), false, 'no state was opened');
  // Trusted, the same command works.
  assert.equal(s.lg(['trust']).code, 0);
  const st = s.lg(['status', '--json']);
  assert.equal(st.code, 0, st.err);
  assert.equal(JSON.parse(st.out).config_file, s.project);
});

test('writable roots that are latchgate\'s own state or config are refused', (t) => {
  const s = setup(t);
  for (const own of [join(s.h, 'state', 'latchgate'), join(s.h, 'cfg', 'latchgate')]) {
    mkdirSync(own, { recursive: true });
    const r = dryRun(s, ['--rw', own]);
    assert.equal(r.code, 125, r.err);
    // The config directory also holds the default age key: either refusal names it.
    assert.match(r.err, /refused as a writable mount: it is latchgate's|age key file\) is in .*: the box would read it/);
  }
  const inside = join(s.h, 'state', 'latchgate', 'keys');
  mkdirSync(inside);
  assert.match(dryRun(s, ['--rw', inside]).err, /it is inside latchgate's state directory/);
  // A parent is fine: the own paths inside it are protected instead.
  const parent = dryRun(s, ['--rw', join(s.h, 'state')]);
  assert.equal(parent.code, 0, parent.err);
  const plan = JSON.parse(parent.out);
  assert.ok(plan.protectedPaths.some((p) => p.path === join(s.h, 'state', 'latchgate') && p.action === 'readonly'));
});

// ------------------------------------------------------------------ the store

test('the trust store is written atomically with mode 0600 and refused when others could have written it', (t) => {
  const dir = tempDir(t);
  const f = join(dir, 'latchgate', 'trusted-configs.json');
  assert.deepEqual(readTrustStore(f), [], 'a missing store is empty');
  const entry = { path: '/p/latchgate.toml', sha256: 'a'.repeat(64), grants: ['rw_mounts: /x'], trusted_at: '2024-01-01T00:00:00.000Z' };
  writeTrustStore(f, [entry]);
  assert.deepEqual(readTrustStore(f), [entry]);
  assert.equal(statSync(f).mode & 0o777, 0o600);
  chmodSync(f, 0o620);
  assertLaunchError(() => readTrustStore(f), LaunchError, f, 'writable by others', 'latchgate trust FILE');
  chmodSync(f, 0o600);
  writeFileSync(f, '{"version": 1, "configs": [{"path": "relative", "sha256": "x", "grants": [], "trusted_at": ""}]}');
  assertLaunchError(() => readTrustStore(f), LaunchError, 'entry 0 is not');
  writeFileSync(f, 'not json');
  assertLaunchError(() => readTrustStore(f), LaunchError, 'not valid JSON');
  const link = join(dir, 'link.json');
  symlinkSync(f, link);
  assertLaunchError(() => readTrustStore(link), LaunchError, 'is a symlink');
  if (isRoot) {
    writeTrustStore(f, [entry]);
    chownSync(f, 65534, 65534);
    assertLaunchError(() => readTrustStore(f), LaunchError, 'owned by uid 65534');
  }
});

test('an untrusted-looking store fails closed: the sandbox refuses rather than trust nothing or everything', (t) => {
  const s = setup(t);
  writeFileSync(s.project, '[sandbox.agent]\nallow_hosts = ["a.example.com"]\n');
  assert.equal(s.lg(['trust']).code, 0);
  assert.equal(dryRun(s).code, 0);
  chmodSync(s.store, 0o666);
  const r = dryRun(s);
  assert.equal(r.code, 125);
  assert.match(r.err, /trust store .*writable by others/);
});

test('a trusted config holds only while the CA certificate files it names are the same: a box that rewrote one makes it refused, with the hashes', (t) => {
  const s = setup(t);
  const ca = join(s.ws, 'certs', 'corp.pem');
  mkdirSync(join(s.ws, 'certs'));
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIBtrusted\n-----END CERTIFICATE-----\n');
  writeFileSync(s.project, `[sandbox.network]\nextra_ca_certs = ["../certs/corp.pem"]\n`);
  const first = dryRun(s);
  assert.equal(first.code, 125, first.err);
  assert.match(first.err, new RegExp(`^ {2}\\+ extra_ca_certs: ${ca} \\(sha256:[0-9a-f]{64}\\)$`, 'm'));
  assert.equal(s.lg(trustArgs(first.err)).code, 0);
  // What a box writing the workspace could do: the config untouched, the certificate replaced.
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIBattacker\n-----END CERTIFICATE-----\n');
  const after = dryRun(s);
  assert.equal(after.code, 125, after.err);
  assert.equal(after.out, '');
  assert.match(after.err, /is unchanged since you trusted it, but a path it names now leads elsewhere or a certificate file it names changed/);
  assert.match(after.err, new RegExp(`^ {2}\\+ extra_ca_certs: ${ca} \\(sha256:`, 'm'));
  assert.match(after.err, new RegExp(`^ {2}- extra_ca_certs: ${ca} \\(sha256:`, 'm'));
  // Trusted again as it is now, it is used.
  assert.equal(s.lg(trustArgs(after.err)).code, 0);
  const used = dryRun(s);
  assert.equal(used.code, 0, used.err);
});
