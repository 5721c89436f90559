// What the box's credential-route tests share: a local HTTPS upstream under a
// test CA that the box's user can read, a config home whose latchgate.toml
// routes "fake" to it (api.example.test pinned to the upstream), and the
// CLI run as root or as the test user.
import https from 'node:https';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { distDir, testUser } from './sandbox.mjs';
import { haveOpenssl, makePki } from '../fixtures/egress-cred/pki.mjs';

export { haveOpenssl };

/** Starts the upstream; handle(req, res) answers; extraSans: more names its certificate holds ("DNS:a.test"). Resolves {pki, port, close()}; null without openssl. */
export async function boxUpstream(prefix, handle, extraSans = '') {
  if (!haveOpenssl()) return null;
  const dir = mkdtempSync(path.join(os.tmpdir(), `latchgate-${prefix}-pki-`));
  const pki = makePki(dir, extraSans);
  // The unprivileged launcher reads the CA (extra_ca_certs).
  chmodSync(dir, 0o755);
  chmodSync(pki.caFile, 0o644);
  const server = https.createServer({ key: pki.server.key, cert: pki.server.cert }, handle);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    pki,
    port: server.address().port,
    close() {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A config home for `mode` (owned by the test user in user mode) whose
 * latchgate.toml holds `head` lines, then the "fake" route with `keySource`
 * and the network section that reaches `upstream`. Returns {home, cfg, cfgDir, env}.
 */
export function credentialHome(mode, prefix, upstream, { keySource, head = [], dirs }) {
  const home = mkdtempSync(path.join(os.tmpdir(), `latchgate-${prefix}-home-`));
  dirs.push(home);
  const cfgDir = path.join(home, 'cfg', 'latchgate');
  mkdirSync(cfgDir, { recursive: true });
  const cfg = path.join(cfgDir, 'latchgate.toml');
  writeFileSync(cfg, [
    ...head,
    '[sandbox.agent.credentials.fake]',
    'upstream = "https://api.example.test/v1"',
    'header = "x-api-key"',
    `key_source = ${JSON.stringify(keySource)}`,
    '',
    '[sandbox.network]',
    `extra_ca_certs = [${JSON.stringify(upstream.pki.caFile)}]`,
    '',
    '[sandbox.network.resolve]',
    `"api.example.test" = "127.0.0.1:${upstream.port}"`,
    '',
  ].join('\n'));
  if (mode === 'user' && process.getuid() === 0) spawnSync('chown', ['-R', `${testUser().uid}:${testUser().gid}`, home]);
  return { home, cfg, cfgDir, env: { XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'cfg') } };
}

/** Runs the latchgate CLI of `mode` (as the test user in user mode), with stdin `input`. */
export function cliAs(mode, args, env, input = '') {
  const u = testUser();
  const opts = { encoding: 'utf8', input, maxBuffer: 256 * 1024 * 1024, env: { PATH: '/usr/bin:/bin', ...env } };
  if (mode === 'user' && process.getuid() === 0) Object.assign(opts, { uid: u.uid, gid: u.gid });
  return spawnSync(process.execPath, [path.join(distDir(mode), 'cli', 'main.js'), ...args], opts);
}
