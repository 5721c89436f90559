// A file in the workspace must never widen a box on its own (config/trust.ts),
// attacked for real in both launcher modes: inside a box the configuration
// files it was started with, the trust store, the user config directory and
// the runtime directory are read-only; a configuration file changed after it
// was trusted (as a box could have changed it in an earlier run) is refused
// with the diff before anything runs. Next to each attack the legitimate
// path: the trusted file is used, ordinary files stay writable.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, own } from '../helpers/sandbox.mjs';
import { cliAs } from '../helpers/agents.mjs';

const isRoot = process.getuid() === 0;
const dirs = [];
after(() => {
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** XDG directories for one test, all writable by the box's user (so only the protection stops it). */
function xdgHome() {
  const h = mkdtempSync(path.join(os.tmpdir(), 'latchgate-trust-home-'));
  dirs.push(h);
  chmodSync(h, 0o755);
  for (const d of ['state', 'cfg', 'run']) mkdirSync(path.join(h, d));
  own(h);
  return { h, env: { XDG_STATE_HOME: path.join(h, 'state'), XDG_CONFIG_HOME: path.join(h, 'cfg'), XDG_RUNTIME_DIR: path.join(h, 'run') } };
}

/** `latchgate trust FILE` as the launcher of the mode. */
function trust(mode, env, file) {
  const r = cliAs(mode, ['trust', file], env);
  assert.equal(r.status, 0, `latchgate trust ${file}: ${r.stderr}`);
}

/** A directory the box's user owns, to be granted as an rw mount. */
function extraDir(prefix) {
  const d = mkdtempSync(path.join(os.tmpdir(), `latchgate-trust-${prefix}-`));
  dirs.push(d);
  chmodSync(d, 0o755);
  own(d);
  return d;
}

/** Shell lines that try each write and print "TRY name WROTE" or "TRY name DENIED: <error>". */
function tries(attempts) {
  return Object.entries(attempts)
    .map(([k, cmd]) => `if err=$( { ${cmd} ; } 2>&1 ); then echo "TRY ${k} WROTE"; else echo "TRY ${k} DENIED: $err"; fi`)
    .join('\n');
}
const wrote = (stdout) => stdout.split('\n').filter((l) => / WROTE$/.test(l));
const denied = (stdout, k) => stdout.split('\n').find((l) => l.startsWith(`TRY ${k} DENIED`)) ?? '';

for (const mode of MODES) {
  test(`[${mode}] inside the box, the configuration files it was started with cannot be changed`, { skip: skipReason(mode) }, async () => {
    const { env } = xdgHome();
    const ws = makeWorkspace('trust-ro');
    const extra = extraDir('extra');
    mkdirSync(path.join(ws, '.latchgate'));
    // The project config only narrows: used without trust.
    const project = path.join(ws, '.latchgate', 'latchgate.toml');
    const projectText = '[sandbox.limits]\nnofile = 1000\n';
    writeFileSync(project, projectText);
    // The --sandbox-config file grants a mount: trusted.
    const agent = path.join(ws, 'agent.toml');
    const agentText = `rw_mounts = [${JSON.stringify(extra)}]\n`;
    writeFileSync(agent, agentText);
    own(path.join(ws, '.latchgate'));
    own(agent);
    trust(mode, env, agent);
    const r = await runBox(mode, {
      workspace: ws,
      env,
      args: ['--sandbox-config', agent],
      cmd: ['/bin/sh', '-c', `${tries({
        'append-rw-mounts': `printf 'rw_mounts = ["/"]\\n' >> .latchgate/latchgate.toml`,
        'append-allow-hosts': `printf 'allow_hosts = ["evil.example.com"]\\n' >> .latchgate/latchgate.toml`,
        'replace-by-rename': `echo x > .latchgate/new && mv .latchgate/new .latchgate/latchgate.toml`,
        'remove': 'rm -f .latchgate/latchgate.toml',
        'sandbox-config': `printf 'rw_mounts = ["/"]\\n' >> agent.toml`,
      })}\necho legit > ${extra}/from-box && echo ok > legit.txt && echo "nofile=$(ulimit -n)"`],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(wrote(r.stdout), [], `the box changed its own configuration:\n${r.stdout}`);
    assert.match(denied(r.stdout, 'append-rw-mounts'), /Read-only file system/);
    assert.match(denied(r.stdout, 'append-allow-hosts'), /Read-only file system/);
    assert.match(denied(r.stdout, 'sandbox-config'), /Read-only file system/);
    assert.equal(readFileSync(project, 'utf8'), projectText, 'unchanged on the host');
    assert.equal(readFileSync(agent, 'utf8'), agentText);
    // The legitimate path: both files were used (the limit, the trusted rw mount), the workspace is writable.
    assert.match(r.stdout, /^nofile=1000$/m);
    assert.equal(readFileSync(path.join(extra, 'from-box'), 'utf8'), 'legit\n');
    assert.equal(readFileSync(path.join(ws, 'legit.txt'), 'utf8'), 'ok\n');
  });

  test(`[${mode}] what a trusted configuration names that the host trusts or runs (manifests, a policy, a checkpoint program, a key command, a CA file) cannot be changed from the box`, { skip: skipReason(mode) }, async () => {
    const { env } = xdgHome();
    const ws = makeWorkspace('trust-named');
    const ops = path.join(ws, 'ops');
    mkdirSync(path.join(ops, 'manifests'), { recursive: true });
    writeFileSync(path.join(ops, 'manifests', 'a.yaml'), 'id: a\n');
    writeFileSync(path.join(ops, 'publish.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    writeFileSync(path.join(ops, 'getkey.sh'), '#!/bin/sh\necho sk-test-0123456789abcdef\n', { mode: 0o755 });
    writeFileSync(path.join(ops, 'ca.pem'), 'placeholder\n');
    mkdirSync(path.join(ws, 'ci'));
    const cfg = path.join(ws, 'ci', 'latchgate.toml');
    writeFileSync(
      cfg,
      [
        '[gate]',
        'manifest_dirs = ["../ops/manifests"]',
        'extra_ca_certs = ["../ops/ca.pem"]',
        '[policy]',
        'opa_wasm = "../ops/policy.wasm"',
        '[ledger.checkpoints.sinks.publish]',
        `command = [${JSON.stringify(path.join(ops, 'publish.sh'))}]`,
        '[sandbox.agent.credentials.example]',
        'upstream = "https://api.example.com"',
        'header = "x-api-key"',
        `key_source = 'cmd:[${JSON.stringify(path.join(ops, 'getkey.sh'))}]'`,
        '',
      ].join('\n'),
    );
    own(ws);
    trust(mode, env, cfg);
    const r = await runBox(mode, {
      workspace: ws,
      env,
      args: ['--config', cfg, '--dry-run'],
    });
    // The plan is enough to see the mounts; then the box itself tries.
    assert.equal(r.code, 0, r.stderr);
    const run = await runBox(mode, {
      workspace: ws,
      env,
      args: ['--config', cfg],
      cmd: ['/bin/sh', '-c', `${tries({
        'add-manifest': 'echo "id: evil" > ops/manifests/evil.yaml',
        'edit-manifest': 'echo "id: evil" >> ops/manifests/a.yaml',
        'rename-manifests': 'mv ops/manifests ops/m2',
        'plant-policy': 'echo evil > ops/policy.wasm',
        'edit-checkpoint-program': 'echo "curl evil" >> ops/publish.sh',
        'replace-key-command': 'echo "#!/bin/sh" > ops/new.sh && mv ops/new.sh ops/getkey.sh',
        'replace-ca': 'echo evil > ops/ca.pem',
      })}\necho ok > ops/notes.txt`],
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(wrote(run.stdout), [], `the box changed what the host trusts:\n${run.stdout}`);
    assert.equal(readFileSync(path.join(ops, 'manifests', 'a.yaml'), 'utf8'), 'id: a\n');
    assert.ok(!existsSync(path.join(ops, 'manifests', 'evil.yaml')));
    assert.ok(!existsSync(path.join(ops, 'policy.wasm')) || readFileSync(path.join(ops, 'policy.wasm'), 'utf8') === '', 'no policy planted');
    assert.equal(readFileSync(path.join(ops, 'publish.sh'), 'utf8'), '#!/bin/sh\nexit 0\n');
    assert.equal(readFileSync(path.join(ops, 'getkey.sh'), 'utf8'), '#!/bin/sh\necho sk-test-0123456789abcdef\n');
    assert.equal(readFileSync(path.join(ops, 'ca.pem'), 'utf8'), 'placeholder\n');
    // The legitimate path: the rest of the workspace stays writable.
    assert.equal(readFileSync(path.join(ops, 'notes.txt'), 'utf8'), 'ok\n');
  });

  test(`[${mode}] a configuration file changed after it was trusted is refused with the diff, and nothing runs`, { skip: skipReason(mode) }, async () => {
    const variants = {
      'project config': (ws) => ({ file: path.join(ws, '.latchgate', 'latchgate.toml'), args: [], env: {} }),
      '--config': (ws) => ({ file: path.join(ws, 'ci', 'latchgate.toml'), args: ['--config', path.join(ws, 'ci', 'latchgate.toml')], env: {} }),
      '$LATCHGATE_CONFIG': (ws) => ({ file: path.join(ws, 'env.toml'), args: [], env: { LATCHGATE_CONFIG: path.join(ws, 'env.toml') } }),
      '--sandbox-config': (ws) => ({ file: path.join(ws, 'agent.toml'), args: ['--sandbox-config', path.join(ws, 'agent.toml')], env: {}, standalone: true }),
    };
    for (const [origin, make] of Object.entries(variants)) {
      const { env } = xdgHome();
      const ws = makeWorkspace('trust-changed');
      const extra = extraDir('extra');
      const v = make(ws);
      mkdirSync(path.dirname(v.file), { recursive: true });
      writeFileSync(v.file, `${v.standalone ? '' : '[sandbox.agent]\n'}rw_mounts = [${JSON.stringify(extra)}]\n`);
      own(path.dirname(v.file));
      trust(mode, env, v.file);
      const boxEnv = { ...env, ...v.env };
      const ok = await runBox(mode, { workspace: ws, env: boxEnv, args: v.args, cmd: ['/bin/sh', '-c', `touch ran-1 && touch ${extra}/seen-1`] });
      assert.equal(ok.code, 0, `${origin}: ${ok.stderr}`);
      assert.ok(existsSync(path.join(ws, 'ran-1')) && existsSync(path.join(extra, 'seen-1')), `${origin}: the trusted file is used`);

      // Standing in for a box that wrote the file during an earlier run.
      appendFileSync(v.file, 'allow_hosts = ["evil.example.com"]\n');
      const r = await runBox(mode, { workspace: ws, env: boxEnv, args: v.args, cmd: ['/bin/sh', '-c', 'touch ran-2'] });
      assert.equal(r.code, 125, `${origin}: ${r.stderr}`);
      assert.ok(!existsSync(path.join(ws, 'ran-2')), `${origin}: the command ran`);
      assert.ok(r.stderr.includes(`${origin} ${v.file} changed since you trusted it`), `${origin}: ${r.stderr}`);
      assert.match(r.stderr, /^ {2}\+ allow_hosts: evil\.example\.com$/m);
      assert.ok(r.stderr.includes(`    rw_mounts: ${extra}`), r.stderr);
      assert.match(r.stderr, new RegExp(`^ {2}latchgate trust --sha256 [0-9a-f]{64} ${v.file.replaceAll('.', '\\.')}$`, 'm'));
    }
  });

  test(`[${mode}] the trust store, the state, user config and runtime directories are read-only in a box whose rw mounts hold them`, { skip: skipReason(mode) }, async () => {
    const { h, env } = xdgHome();
    // A trusted file puts a trust store in place, written by the launcher (root's own in root mode).
    const ws = makeWorkspace('trust-store');
    const cfg = path.join(ws, 'ci.toml');
    writeFileSync(cfg, '[sandbox.agent]\nallow_hosts = ["a.example.com"]\n');
    trust(mode, env, cfg);
    const store = path.join(h, 'state', 'latchgate', 'trusted-configs.json');
    const storeText = readFileSync(store, 'utf8');
    // The box's user owns every directory around it: only the protection stands in the way.
    // (The user config directory stays missing: a placeholder must keep it from being created.)
    mkdirSync(path.join(h, 'run', 'latchgate'));
    own(path.join(h, 'state', 'latchgate'));
    own(path.join(h, 'run', 'latchgate'));
    // root's trust store itself stays root's (a store owned by another user is refused).
    if (mode === 'root' && isRoot) chownSync(store, 0, 0);
    const q = (p) => path.join(h, p);
    const r = await runBox(mode, {
      workspace: ws,
      env,
      args: ['--rw', h],
      cmd: ['/bin/sh', '-c', `${tries({
        'store-append': `printf '{}' >> ${q('state/latchgate/trusted-configs.json')}`,
        'store-replace': `echo '{"version":1,"configs":[]}' > ${q('state/latchgate/new.json')} && mv ${q('state/latchgate/new.json')} ${q('state/latchgate/trusted-configs.json')}`,
        'store-remove': `rm -f ${q('state/latchgate/trusted-configs.json')}`,
        'state-dir-rename': `mv ${q('state/latchgate')} ${q('state/moved')}`,
        'user-config': `mkdir -p ${q('cfg/latchgate')} && printf '[sandbox.agent]\\nrw_mounts = ["/"]\\n' > ${q('cfg/latchgate/latchgate.toml')}`,
        'runtime-dir': `mkdir -p ${q('run/latchgate')} && touch ${q('run/latchgate/gate.sock')}`,
      })}\necho ok > ${q('legit.txt')}`],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(wrote(r.stdout), [], `the box wrote latchgate's own files:\n${r.stdout}`);
    assert.match(denied(r.stdout, 'store-append'), /Read-only file system|Permission denied/);
    assert.match(denied(r.stdout, 'user-config'), /Read-only file system/);
    assert.match(denied(r.stdout, 'runtime-dir'), /Read-only file system/);
    assert.equal(readFileSync(store, 'utf8'), storeText, 'the trust store is unchanged on the host');
    assert.ok(!existsSync(q('cfg/latchgate/latchgate.toml')), 'no user config was created');
    assert.equal(readFileSync(q('legit.txt'), 'utf8'), 'ok\n', 'the rest of the rw mount is writable');
    // And the trusted file is still trusted (the store works after the run).
    const again = await runBox(mode, { workspace: ws, env, args: ['--config', cfg], cmd: ['/bin/true'] });
    assert.equal(again.code, 0, again.stderr);
  });
}
