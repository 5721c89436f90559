// The gate's tools wired into a box (profiles' [gate_tools], launch-config.ts,
// latchgate-in-box.ts): each agent profile hands its agent the MCP server
// /run/latchgate/bin/latchgate-mcp for the run, --no-gate-tools and
// [sandbox.agent] gate_tools = false take it away, the box's principal is
// one per profile, and latchgate's own installation is read-only in the box
// even when a writable mount holds it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseProfile } from '../../dist/config/profiles.js';
import { absolutePath, tempDir } from '../fixtures/unit/helpers.mjs';

const ROOT = realpathSync(fileURLToPath(new URL('../..', import.meta.url)));
const MAIN = join(ROOT, 'dist/cli/main.js');
const MCP = '/run/latchgate/bin/latchgate-mcp';

function setup(t) {
  const ws = tempDir(t);
  const env = { PATH: absolutePath(), HOME: process.env.HOME, XDG_STATE_HOME: join(ws, 'state'), XDG_CONFIG_HOME: join(ws, 'cfg'), XDG_RUNTIME_DIR: join(ws, 'run') };
  const run = (args, more = {}) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: ws, env: { ...env, ...more } });
  const json = (args, more) => {
    const r = run(args, more);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  return { ws, run, json };
}

test('claude-code: an MCP config given by --mcp-config and only latchgate\'s tools allowed; the prompt stays the prompt', (t) => {
  const { ws, json } = setup(t);
  const p = json(['sandbox', '--profile', 'claude-code', '--print-profile', '--workspace', ws, '--', 'claude', 'fix the bug']);
  assert.equal(p.principal, 'sandbox-claude-code');
  // The `=` forms: a list-taking option written "--allowedTools X" would take "fix the bug" as a second tool.
  assert.deepEqual(p.command, ['claude', '--mcp-config=/run/latchgate/mcp.json', '--allowedTools=mcp__latchgate', 'fix the bug']);
  assert.deepEqual(p.generated_files['/run/latchgate/mcp.json'], { mcpServers: { latchgate: { type: 'stdio', command: MCP, args: [] } } });
  assert.deepEqual(p.gate_tools.mcp_server, { name: 'latchgate', command: MCP });
  assert.deepEqual(p.gate_tools.files, ['/run/latchgate/mcp.json']);
  assert.equal(p.env.MCP_CONNECTION_NONBLOCKING, 'false', 'Claude Code waits for the tools before the first turn');
  assert.ok(!p.command.some((a) => /dangerously|bypassPermissions|--strict-mcp-config/.test(a)), 'no blanket bypass, the user\'s own MCP servers still load');
});

test('codex: -c overrides name the server and approve its tools; the user\'s config.toml is not touched', (t) => {
  const { ws, json } = setup(t);
  const p = json(['sandbox', '--profile', 'codex', '--print-profile', '--workspace', ws, '--', 'codex', 'exec', 'hi']);
  assert.equal(p.principal, 'sandbox-codex');
  const args = p.command;
  const overrides = args.flatMap((a, i) => (args[i - 1] === '-c' ? [a] : []));
  assert.ok(overrides.includes(`mcp_servers.latchgate.command="${MCP}"`), args.join(' '));
  assert.ok(overrides.includes('mcp_servers.latchgate.default_tools_approval_mode="approve"'));
  assert.ok(overrides.includes('mcp_servers.latchgate.required=true'), 'Codex waits for the tools before its first turn');
  assert.deepEqual(args.slice(-2), ['exec', 'hi']);
});

test('opencode: the generated config gets the server, merged with what the routes add', (t) => {
  const { ws, json } = setup(t);
  const p = json(['sandbox', '--profile', 'opencode', '--print-profile', '--workspace', ws], { OPENAI_API_KEY: 'sk-test-key-0123456789' });
  const cfg = p.generated_files['/run/latchgate/opencode.json'];
  assert.deepEqual(cfg.mcp.latchgate.command, [MCP]);
  assert.deepEqual(cfg.permission, { "latchgate_*": "allow" }, "only latchgate's tools run without a prompt");
  assert.equal(cfg.provider.openai.options.baseURL, 'http://127.0.0.1:3129/openai', 'the route fragment is still merged');
  assert.equal(cfg.autoupdate, false);
});

test('--no-gate-tools and [sandbox.agent] gate_tools = false: no server, no argument, no file', (t) => {
  const { ws, run, json } = setup(t);
  for (const profile of ['claude-code', 'codex', 'opencode']) {
    const off = json(['sandbox', '--profile', profile, '--print-profile', '--no-gate-tools', '--workspace', ws]);
    assert.equal(off.gate_tools, null, profile);
    assert.ok(!JSON.stringify(off).includes('latchgate-mcp'), `${profile}: ${JSON.stringify(off.generated_files)}`);
    assert.ok(!off.command.some((a) => a.includes('mcp')), off.command.join(' '));
  }
  const cfg = join(ws, 'latchgate.toml');
  writeFileSync(cfg, '[sandbox.agent]\ngate_tools = false\n');
  assert.equal(run(['trust', cfg]).status, 0);
  const viaConfig = json(['sandbox', '--profile', 'claude-code', '--print-profile', '--config', cfg, '--workspace', ws]);
  assert.equal(viaConfig.gate_tools, null);
  assert.deepEqual(viaConfig.generated_files, {});
  // The plan says so too, and the box still has latchgate runnable.
  const plan = json(['sandbox', '--profile', 'claude-code', '--dry-run', '--no-gate-tools', '--workspace', ws]);
  assert.equal(plan.gate.tools, null);
  assert.ok(plan.mounts.some((m) => m.kind === 'write' && m.path === MCP));
});

test('the box\'s principal: one per profile, [sandbox.agent] principal over it, sandbox-agent without a profile', (t) => {
  const { ws, run, json } = setup(t);
  assert.equal(json(['sandbox', '--profile', 'codex', '--dry-run', '--workspace', ws]).gate.principal, 'sandbox-codex');
  assert.equal(json(['sandbox', '--dry-run', '--workspace', ws, '--', 'true']).gate.principal, 'sandbox-agent');
  const cfg = join(ws, 'latchgate.toml');
  writeFileSync(cfg, '[sandbox.agent]\nprincipal = "team-bot"\n');
  assert.equal(run(['trust', cfg]).status, 0);
  assert.equal(json(['sandbox', '--profile', 'codex', '--dry-run', '--config', cfg, '--workspace', ws]).gate.principal, 'team-bot');
});

test('the plan: /run/latchgate/bin runs this installation\'s Node and scripts, with the box\'s gate named', (t) => {
  const { ws, json } = setup(t);
  const plan = json(['sandbox', '--profile', 'claude-code', '--dry-run', '--workspace', ws, '--', 'claude', '-p', 'hi']);
  assert.equal(plan.gate.tools, MCP);
  const bin = Object.fromEntries(plan.mounts.filter((m) => m.kind === 'write' && m.path.startsWith('/run/latchgate/bin/')).map((m) => [m.path, m]));
  assert.deepEqual(Object.keys(bin).sort(), ['/run/latchgate/bin/latchgate', MCP]);
  assert.equal(bin[MCP].mode, 0o555);
  assert.match(bin[MCP].content, /^#!\/bin\/sh\n/);
  assert.ok(bin[MCP].content.includes(`${realpathSync(process.execPath)} ${join(ROOT, 'dist/cli/latchgate-mcp.js')} "$@"`), bin[MCP].content);
  assert.ok(bin[MCP].content.includes('LATCHGATE_URL=unix:///run/latchgate/gate.sock'), 'set by the command: agents start servers with an environment of their own');
  assert.ok(plan.env.PATH.split(':').includes('/run/latchgate/bin'));
  const mcpFile = plan.mounts.find((m) => m.kind === 'write' && m.path === '/run/latchgate/mcp.json');
  assert.equal(mcpFile.mode, 0o444);
});

test('a writable mount holding latchgate\'s installation leaves it read-only; one inside it is refused', (t) => {
  const { ws, run, json } = setup(t);
  // The installation is where the host runs latchgate from after the box exits.
  const plan = json(['sandbox', '--dry-run', '--workspace', ROOT, '--', 'true']);
  const ro = new Set(plan.mounts.filter((m) => m.kind === 'bind' && m.readonly && m.why === 'protected path').map((m) => m.path));
  for (const part of ['dist', 'node_modules', 'package.json', 'build', 'providers']) assert.ok(ro.has(join(ROOT, part)), `${part} read-only in the box: ${[...ro].join(' ')}`);
  // Its files are code, not an agent's settings: nothing in them (lock files' integrity strings) becomes a placeholder.
  assert.deepEqual(plan.mounts.filter((m) => m.path?.includes('sha512-')).map((m) => m.path), []);
  // Node looks modules up above the installation too: a writable mount there is refused before anything is walked.
  const above = run(['sandbox', '--dry-run', '--workspace', ws, '--rw', join(dirname(ROOT), 'node_modules'), '--', 'true']);
  assert.equal(above.status, 125);
  assert.match(above.stderr, /refused as a writable mount: latchgate runs from .*, and Node loads modules it does not find there from .*\/node_modules, which the box could then write; install latchgate outside/);
  for (const part of ['dist', 'build/Release', 'node_modules/commander']) {
    const r = run(['sandbox', '--dry-run', '--workspace', ws, '--rw', join(ROOT, part), '--', 'true']);
    assert.equal(r.status, 125);
    assert.match(r.stderr, /refused as a writable mount: .*latchgate's installation/);
  }
});

test('profile files: [gate_tools] may name only the profile\'s own [files.*]; a file no variable names is written only when merged into', () => {
  const base = 'command = ["x"]\n[files.mcp]\npath = "/run/latchgate/mcp.json"\njson = \'{}\'\n';
  assert.throws(() => parseProfile('x', 'x.toml', `${base}[gate_tools]\nfiles = { mpc = '{"a": 1}' }\n`), /x\.toml: \[gate_tools\] key "files": no \[files\.mpc\] in this profile; did you mean "mcp"\?/);
  assert.throws(() => parseProfile('x', 'x.toml', `${base}[gate_tools]\nfiles = { mcp = '[1]' }\n`), /\[gate_tools\] key "files\.mcp": expected a JSON object/);
  assert.throws(() => parseProfile('x', 'x.toml', `${base}[gate_tools]\nargz = []\n`), /gate_tools.*argz.*did you mean "args"/s);
  assert.throws(() => parseProfile('x', 'x.toml', 'command = ["x"]\n[files.bin]\npath = "/run/latchgate/bin"\njson = \'{}\'\nenv = "X"\n'), /expected a file directly under \/run\/latchgate\/ \(not/);
  const profiles = readFileSync(join(ROOT, 'profiles/claude-code.toml'), 'utf8');
  assert.match(profiles, /\[files\.mcp\]\npath = "\/run\/latchgate\/mcp.json"\njson = '''\{\}'''/);
});
