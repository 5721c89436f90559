// The launch below the command line (src/sandbox/launch.ts, launch-config.ts,
// box-events.ts): the configuration merged in order, the profile read once,
// the plan built as data that --dry-run prints as is, nothing made for a
// plan only printed, and the box's own ledger events as they are written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gateSetup } from '../../dist/gate/setup.js';
import { loadProfile } from '../../dist/config/profiles.js';
import { LaunchError } from '../../dist/core/errors.js';
import { BOX_DIR_PREFIX } from '../../dist/sandbox/box-dir.js';
import { BoxEvents } from '../../dist/sandbox/box-events.js';
import { agentSettings, DEFAULT_BOX_PRINCIPAL, withAgentSection } from '../../dist/sandbox/launch-config.js';
import { planLaunch, prepareLaunch } from '../../dist/sandbox/launch.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { absolutePath, tempDir } from '../fixtures/unit/helpers.mjs';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const LAUNCH = new URL('../../dist/sandbox/launch.js', import.meta.url).href;
const LAUNCH_CONFIG = new URL('../../dist/sandbox/launch-config.js', import.meta.url).href;

const flags = (over = {}) => ({ ro: [], rw: [], passEnv: [], allowHost: [], ...over });

/**
 * latchgate's state, configuration and runtime directories in a fresh
 * directory, and the working directory there too (no project config is
 * found): the environment a launch reads, for this process and its children.
 */
function isolate(t) {
  const root = tempDir(t, 'latchgate-launch-');
  const env = { XDG_STATE_HOME: join(root, 'state'), XDG_CONFIG_HOME: join(root, 'config'), XDG_RUNTIME_DIR: join(root, 'run') };
  const saved = Object.fromEntries(['LATCHGATE_CONFIG', 'TMPDIR', 'PATH', ...Object.keys(env)].map((k) => [k, process.env[k]]));
  const cwd = process.cwd();
  delete process.env.LATCHGATE_CONFIG;
  Object.assign(process.env, env, { PATH: absolutePath() });
  process.chdir(root);
  t.after(() => {
    process.chdir(cwd);
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  return { root, env };
}

/** loadProfile, counting its calls. */
function countingLoader() {
  const calls = [];
  const load = (name) => {
    calls.push(name);
    return loadProfile(name);
  };
  return { load, calls };
}

test('a launch reads the agent profile once', async (t) => {
  const { root } = isolate(t);
  const { load, calls } = countingLoader();
  const { plan } = await planLaunch([], flags({ workspace: root, profile: 'claude' }), gateSetup(), load);
  assert.deepEqual(calls, ['claude']);
  assert.equal(plan.profile, 'claude-code');
  const again = countingLoader();
  agentSettings([], flags({ profile: 'codex' }), gateSetup().config, root, again.load);
  assert.deepEqual(again.calls, ['codex'], 'the effective profile and the allowed hosts come from one read');
});

test('merge order: profile, then latchgate.toml [sandbox.agent], then flags; the given command wins over the profile\'s', (t) => {
  const { root } = isolate(t);
  const config = gateSetup().config;
  config.sandbox.allowHosts = ['CFG.example.com', 'api.anthropic.com'];
  config.sandbox.roMounts = ['/opt/cfg'];
  config.sandbox.passEnv = ['CFG_VAR'];
  const f = flags({ profile: 'claude', allowHost: ['flag.example.com', 'cfg.example.com'], ro: ['/opt/flag', '/opt/cfg'], passEnv: ['FLAG_VAR'] });
  const a = agentSettings([], f, config, root);
  const fromProfile = loadProfile('claude').allowHosts;
  assert.ok(fromProfile.includes('api.anthropic.com'), 'the profile allows its API host (the case below depends on it)');
  assert.deepEqual(a.allowHosts, [...fromProfile, 'cfg.example.com', 'flag.example.com'], 'normalised, each at its first place');
  const ro = a.effective.ro;
  assert.ok(ro.indexOf('/opt/cfg') < ro.indexOf('/opt/flag') && ro.filter((p) => p === '/opt/cfg').length === 1, `ro: ${ro}`);
  assert.deepEqual(a.effective.passEnv.slice(-2), ['CFG_VAR', 'FLAG_VAR']);
  assert.equal(a.command[0], 'claude', 'no command given: the profile\'s');
  assert.deepEqual(agentSettings(['sh', '-c', 'true'], f, config, root).command, ['sh', '-c', 'true']);
  // A bad entry is named where it came from.
  config.sandbox.allowHosts = ['https://x.example.com'];
  assert.throws(() => agentSettings([], flags(), config, root), (e) => e instanceof LaunchError && /^latchgate\.toml: \[sandbox\.agent\] allow_hosts "https:\/\/x\.example\.com": remove the scheme/.test(e.message));
  config.sandbox.allowHosts = [];
  assert.throws(() => agentSettings([], flags({ allowHost: ['10.0.0.1'] }), config, root), /--allow-host "10\.0\.0\.1": an IP address/);
});

test('--sandbox-config replaces the agent section; limits and network stay latchgate.toml\'s', (t) => {
  isolate(t);
  const base = gateSetup().config;
  base.sandbox = { ...base.sandbox, allowHosts: ['toml.example.com'], principal: 'toml-agent', limits: { nofile: 99 }, strictNet: true, network: { allowPorts: [8443], extraCaCerts: [], resolve: new Map() } };
  const agent = { ...gateSetup().config.sandbox, allowHosts: ['file.example.com'], principal: 'file-agent', limits: { nofile: 1 }, strictNet: false, network: { allowPorts: [1], extraCaCerts: ['/x.pem'], resolve: new Map() } };
  const merged = withAgentSection(base, agent, '/etc/agent.toml');
  assert.deepEqual(merged.sandbox.allowHosts, ['file.example.com']);
  assert.equal(merged.sandbox.principal, 'file-agent');
  assert.deepEqual(merged.sandbox.limits, { nofile: 99 });
  assert.equal(merged.sandbox.strictNet, true);
  assert.deepEqual(merged.sandbox.network.allowPorts, [8443]);
  assert.equal(merged.gate, base.gate, 'the gate\'s settings are untouched');
  assert.equal(merged.file, '/etc/agent.toml', 'with no latchgate.toml, messages name the file read');
  assert.equal(withAgentSection({ ...base, file: '/p/latchgate.toml' }, agent, '/etc/agent.toml').file, '/p/latchgate.toml');
});

test('a plan only printed makes nothing: its sockets are named, not created', async (t) => {
  const { root } = isolate(t);
  const parent = tempDir(t, 'latchgate-boxparent-');
  process.env.TMPDIR = parent;
  const { plan, egress, principal } = await planLaunch(['true'], flags({ workspace: root, allowHost: ['api.example.com'] }), gateSetup());
  assert.deepEqual(readdirSync(parent), [], 'no box directory');
  assert.equal(principal, DEFAULT_BOX_PRINCIPAL);
  assert.deepEqual(plan.gate, { socket: '/run/latchgate/gate.sock', principal: DEFAULT_BOX_PRINCIPAL, tools: null });
  const sockets = plan.mounts.filter((m) => m.kind === 'bind' && m.path.startsWith('/run/latchgate/') && m.path.endsWith('.sock'));
  assert.deepEqual(sockets.map((m) => [m.path, m.src]), [['/run/latchgate/gate.sock', '(a socket created at launch)'], ['/run/latchgate/proxy.sock', '(a socket created at launch)']]);
  assert.deepEqual(egress.allowHosts, ['api.example.com']);
  assert.deepEqual(plan.network.allowHosts, ['api.example.com']);
  assert.deepEqual(plan.command.argv, ['true']);
});

test('a real launch whose planning fails removes the box directory it made', async (t) => {
  const { root, env } = isolate(t);
  const parent = tempDir(t, 'latchgate-boxparent-');
  process.env.TMPDIR = parent;
  // The state directory as a writable mount: refused after the box's gate exists.
  await assert.rejects(prepareLaunch(['true'], flags({ workspace: root, rw: [join(env.XDG_STATE_HOME, 'latchgate')] }), gateSetup()), (e) => e instanceof LaunchError && /refused as a writable mount: it is latchgate's state directory/.test(e.message));
  assert.deepEqual(readdirSync(parent).filter((n) => n.startsWith(BOX_DIR_PREFIX)), []);
});

test('--dry-run prints the plan planLaunch builds, as it is', (t) => {
  const { root, env } = isolate(t);
  const ws = join(root, 'project');
  mkdirSync(ws);
  const childEnv = { PATH: process.env.PATH, HOME: root, ...env };
  const args = ['--profile', 'codex', '--allow-host', 'api.example.com', '--ro', '/usr/share', '--workspace', ws];
  const cli = spawnSync(process.execPath, [MAIN, 'sandbox', '--dry-run', ...args, '--', 'codex', 'exec'], { encoding: 'utf8', cwd: root, env: childEnv });
  assert.equal(cli.status, 0, cli.stderr);
  const f = JSON.stringify(flags({ profile: 'codex', allowHost: ['api.example.com'], ro: ['/usr/share'], workspace: ws }));
  const code = `const { launchSetup } = await import(${JSON.stringify(LAUNCH_CONFIG)}); const { planLaunch } = await import(${JSON.stringify(LAUNCH)});
    const f = ${f}; const { plan } = await planLaunch(['codex', 'exec'], f, launchSetup(f)); process.stdout.write(JSON.stringify(plan, null, 2) + '\\n');`;
  const direct = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', cwd: root, env: childEnv });
  assert.equal(direct.status, 0, direct.stderr);
  assert.equal(cli.stdout, direct.stdout);
  const plan = JSON.parse(cli.stdout);
  assert.equal(plan.profile, 'codex');
  assert.deepEqual(plan.command.argv.slice(0, 1), ['codex']);
  assert.ok(plan.network.allowHosts.includes('api.example.com'));
});

test('the box\'s events: written through the ledger alone, each marked when the box runs degraded', async (t) => {
  const stateDir = tempDir(t);
  const events = new BoxEvents(stateDir, 'box-agent', true);
  await events.sandboxDegraded(['trust-new-repos'], '/w');
  events.exit({ event_type: 'egress', decision: 'allow', subject: { principal: 'claimed' }, details: { host: 'api.example.com', port: 443, resolved_address: '127.0.0.1', bytes_up: 1, bytes_down: 2, duration_ms: 3, reason: null, transport: 'tcp', status: 200 } });
  events.hostExec({ kind: 'new-git-dir', path: '/w/x/.git', action: 'disabled', moved: { from: '/w/x/.git', to: '/w/x/.git.latchgate-disabled' }, message: 'm' });
  events.hostExec({ kind: 'new-gitlinks', path: '/w', action: 'reported', gitlinks: ['sub'], message: 'm' });
  events.stateFile({ name: 'claude', path: '/h/.claude.json', outcome: 'merged', dropped: ['/mcpServers'] });
  events.stateFile({ name: 'claude', path: '/h/.claude.json', outcome: 'kept-aside', dropped: [], keptAt: '/h/.claude.json.box', reason: 'r' });
  events.stateFile({ name: 'claude', path: '/h/.claude.json', outcome: 'unchanged', dropped: [] });
  await events.close();
  const ledger = Ledger.open(join(stateDir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  const written = ledger.query().map(({ trace_id, timestamp, prev_hash, ...e }) => e);
  const box = { principal: 'box-agent' };
  assert.deepEqual(written, [
    { event_type: 'sandbox_degraded', decision: 'allow', subject: box, details: { degraded: ['trust-new-repos'], workspace: '/w' }, sandbox_degraded: true },
    { event_type: 'egress', decision: 'allow', subject: box, details: { host: 'api.example.com', port: 443, resolved_address: '127.0.0.1', bytes_up: 1, bytes_down: 2, duration_ms: 3, reason: null, transport: 'tcp', status: 200 }, sandbox_degraded: true },
    { event_type: 'sandbox_host_exec', decision: 'deny', subject: box, details: { kind: 'new-git-dir', path: '/w/x/.git', action: 'disabled', moved_to: '/w/x/.git.latchgate-disabled' }, sandbox_degraded: true },
    { event_type: 'sandbox_host_exec', decision: 'allow', subject: box, details: { kind: 'new-gitlinks', path: '/w', action: 'reported', gitlinks: ['sub'] }, sandbox_degraded: true },
    { event_type: 'state_file_merge', decision: 'deny', subject: box, details: { path: '/h/.claude.json', outcome: 'merged', dropped: ['/mcpServers'] }, sandbox_degraded: true },
    { event_type: 'state_file_merge', decision: 'deny', subject: box, details: { path: '/h/.claude.json', outcome: 'kept-aside', dropped: [], kept_at: '/h/.claude.json.box', reason: 'r' }, sandbox_degraded: true },
    { event_type: 'state_file_merge', decision: 'allow', subject: box, details: { path: '/h/.claude.json', outcome: 'unchanged', dropped: [] }, sandbox_degraded: true },
  ]);
  const plainDir = tempDir(t);
  const plain = new BoxEvents(plainDir, 'box-agent', false);
  plain.hostExec({ kind: 'new-git-dir', path: '/w/.git', action: 'kept', message: 'm' });
  await plain.close();
  const other = Ledger.open(join(plainDir, 'ledger.sqlite3'));
  t.after(() => other.db.close());
  assert.deepEqual(other.query().map((e) => [e.decision, 'sandbox_degraded' in e]), [['allow', false]]);
});
