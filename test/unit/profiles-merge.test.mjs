// Runtime discovery with a fake PATH, and the merge order profile < latchgate.toml < flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyProfileArgs, discoverInstall, loadProfile, mergeProfile } from '../../dist/config/profiles.js';
import { LaunchError } from '../../dist/core/errors.js';
import { assertLaunchError, tempDir } from '../fixtures/unit/helpers.mjs';

function exe(p, text) {
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  chmodSync(p, 0o755);
}

test('an npm-style symlinked script with #!/usr/bin/env node: its prefix and node', (t) => {
  const d = tempDir(t);
  const prefix = join(d, 'npm-global');
  exe(join(prefix, 'lib/node_modules/agent/cli.js'), '#!/usr/bin/env node\nconsole.log(1)\n');
  mkdirSync(join(prefix, 'bin'));
  symlinkSync('../lib/node_modules/agent/cli.js', join(prefix, 'bin/agent'));
  const nodePrefix = join(d, 'nvm/versions/node/v20');
  exe(join(nodePrefix, 'bin/node'), '\x7fELF');
  const disc = discoverInstall('agent', `${join(d, 'empty')}:${join(prefix, 'bin')}:${join(nodePrefix, 'bin')}`, [join(d, 'home')]);
  assert.equal(disc.launcher, join(prefix, 'bin/agent'));
  assert.equal(disc.real, join(prefix, 'lib/node_modules/agent/cli.js'));
  assert.equal(disc.interpreter, join(nodePrefix, 'bin/node'));
  assert.deepEqual(disc.ro.sort(), [nodePrefix, prefix].sort());
  assert.deepEqual(disc.path, [], 'both bin dirs are <mount>/bin, which the plan puts on PATH');
});

test('an absolute interpreter outside /usr is mounted; /usr ones are not', (t) => {
  const d = tempDir(t);
  exe(join(d, 'venv/bin/python3'), '\x7fELF');
  exe(join(d, 'venv/bin/aider'), `#!${join(d, 'venv/bin/python3')} -u\nimport aider\n`);
  const disc = discoverInstall('aider', join(d, 'venv/bin'), []);
  assert.equal(disc.interpreter, join(d, 'venv/bin/python3'));
  assert.deepEqual(disc.ro, [join(d, 'venv')]);
  exe(join(d, 'sys/bin/tool'), '#!/usr/bin/env sh\necho\n');
  const sys = discoverInstall('tool', join(d, 'sys/bin'), []);
  assert.ok(sys.interpreter === null || sys.interpreter.startsWith('/usr/') || sys.interpreter.startsWith('/bin/'));
  assert.deepEqual(sys.ro, [join(d, 'sys')]);
  assert.equal(discoverInstall('sh', '/usr/bin:/bin', []).ro.length, 0, 'nothing under /usr');
  assert.equal(discoverInstall('no-such-agent-xyz', join(d, 'venv/bin'), []).launcher, null);
});

test('a launcher in a bin dir directly under HOME never mounts HOME whole', (t) => {
  const d = tempDir(t);
  const home = join(d, 'home');
  exe(join(home, '.local/share/claude/versions/2.1/claude'), '\x7fELF');
  mkdirSync(join(home, 'bin'), { recursive: true });
  symlinkSync(join(home, '.local/share/claude/versions/2.1/claude'), join(home, 'bin/claude'));
  const disc = discoverInstall('claude', join(home, 'bin'), [home]);
  assert.ok(!disc.ro.includes(home), JSON.stringify(disc));
  assert.ok(disc.ro.includes(join(home, '.local/share/claude/versions/2.1')));
  assert.ok(disc.ro.includes(join(home, 'bin')));
  assert.deepEqual(disc.path, [join(home, 'bin')]);
  // The native installer's layout: ~/.local/bin -> ~/.local/share/... gives ~/.local.
  mkdirSync(join(home, '.local/bin'), { recursive: true });
  symlinkSync(join(home, '.local/share/claude/versions/2.1/claude'), join(home, '.local/bin/claude'));
  assert.deepEqual(discoverInstall('claude', join(home, '.local/bin'), [home]).ro, [join(home, '.local')]);
});

const emptyFile = () => ({ allowHosts: [], roMounts: [], rwMounts: [], passEnv: [], credentials: new Map() });
const noFlags = () => ({ allowHost: [], ro: [], rw: [], passEnv: [] });

test('merge order: profile, then latchgate.toml, then flags; routes by name', (t) => {
  const home = tempDir(t);
  mkdirSync(join(home, '.claude'));
  const p = loadProfile('claude-code');
  const file = { ...emptyFile(), allowHosts: ['cfg.example.com'], passEnv: ['CFG_VAR'], rwMounts: ['/cfg'], credentials: new Map([['anthropic', { upstream: 'https://mirror.example.com' }]]) };
  const flags = { allowHost: ['flag.example.com'], ro: ['/flag-ro'], rw: ['/flag-rw'], passEnv: ['FLAG_VAR', 'TERM'] };
  const eff = mergeProfile(p, file, flags, { env: { ANTHROPIC_API_KEY: 'sk-x', PATH: '/nonexistent' }, home });
  assert.deepEqual(eff.allowHosts.slice(-2), ['cfg.example.com', 'flag.example.com']);
  assert.equal(eff.allowHosts[0], 'api.anthropic.com');
  assert.deepEqual(eff.passEnv, ['TERM', 'LANG', 'EDITOR', 'VISUAL', 'CFG_VAR', 'FLAG_VAR']);
  assert.deepEqual(eff.rw, [join(home, '.claude'), '/cfg', '/flag-rw'], '~/.claude.json is absent on the host: not mounted');
  assert.deepEqual(eff.protected.find((x) => x.path === join(home, '.claude/settings.json')), { path: join(home, '.claude/settings.json'), type: 'file' });
  // A trailing "/" in the profile marks a directory: a missing one gets a directory placeholder.
  assert.deepEqual(eff.protected.find((x) => x.path === join(home, '.claude/hooks')), { path: join(home, '.claude/hooks'), type: 'dir' });
  assert.deepEqual(eff.ro, ['/flag-ro']);
  const r = eff.credentials.get('anthropic');
  assert.equal(r.upstream, 'https://mirror.example.com');
  assert.equal(r.header, 'x-api-key');
  assert.equal(r.from, 'profile+config');
  assert.equal(r.optional, false);
  assert.equal(eff.env.ANTHROPIC_API_KEY, 'latchgate-placeholder');
  assert.equal(eff.env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, '1');
  assert.ok(!JSON.stringify([...eff.credentials]).includes('sk-x'));
});

test('an optional route without a key is dropped with its placeholder and args', (t) => {
  const home = tempDir(t);
  const codex = loadProfile('codex');
  const off = mergeProfile(codex, emptyFile(), noFlags(), { env: { PATH: '/nonexistent' }, home });
  assert.deepEqual(off.dropped, ['openai']);
  assert.equal(off.env.OPENAI_API_KEY, undefined);
  assert.ok(!off.args.some((a) => a.includes('model_provider')));
  const on = mergeProfile(codex, emptyFile(), noFlags(), { env: { OPENAI_API_KEY: 'k', PATH: '/nonexistent' }, home });
  assert.equal(on.env.OPENAI_API_KEY, 'latchgate-placeholder');
  assert.ok(on.args.includes('model_providers.latchgate.base_url="http://127.0.0.1:3129/openai"'));
  assert.deepEqual(applyProfileArgs(['codex', 'exec', 'hi'], on).slice(-2), ['exec', 'hi']);
  assert.equal(applyProfileArgs(['codex', 'exec', 'hi'], on)[1], '-c');
  assert.deepEqual(applyProfileArgs(['bash', '-c', 'x'], on), ['bash', '-c', 'x']);
  // A route the operator configures is required.
  const file = { ...emptyFile(), credentials: new Map([['openai', {}]]) };
  assert.equal(mergeProfile(codex, file, noFlags(), { env: { PATH: '' }, home }).credentials.get('openai').optional, false);
});

test('a required profile route whose key does not resolve is a clear error naming the profile file', (t) => {
  const home = tempDir(t);
  const p = { ...loadProfile('claude-code') };
  p.credentials = new Map([['anthropic', { ...p.credentials.get('anthropic'), optional: false }]]);
  assertLaunchError(() => mergeProfile(p, emptyFile(), noFlags(), { env: { PATH: '' }, home }), LaunchError, 'claude-code.toml', 'env:ANTHROPIC_API_KEY is not set on the host');
});

test('opencode: the generated config holds the active routes as provider base URLs, and no key', (t) => {
  const home = tempDir(t);
  const p = loadProfile('opencode');
  const merged = (env) => mergeProfile(p, emptyFile(), noFlags(), { env: { PATH: '/nonexistent', ...env }, home });
  const doc = (eff) => {
    assert.equal(eff.files.length, 1);
    assert.equal(eff.files[0].path, '/run/latchgate/opencode.json');
    assert.equal(eff.env.OPENCODE_CONFIG, '/run/latchgate/opencode.json');
    return JSON.parse(eff.files[0].content);
  };
  const none = doc(merged({}));
  const { mcp, permission, ...rest } = none;
  assert.deepEqual(rest, { $schema: 'https://opencode.ai/config.json', autoupdate: false, share: 'disabled', snapshot: false }, 'no route: the base only');
  assert.deepEqual([Object.keys(mcp), permission], [['latchgate'], { 'latchgate_*': 'allow' }], 'and the gate\'s tools');
  const secret = 'sk-openai-secret-0123456789';
  const oai = merged({ OPENAI_API_KEY: secret });
  assert.deepEqual(doc(oai).provider, { openai: { options: { baseURL: 'http://127.0.0.1:3129/openai' } } });
  assert.ok(!oai.files[0].content.includes(secret), 'the key is not in the file');
  assert.equal(oai.env.OPENAI_API_KEY, 'latchgate-placeholder');
  const both = doc(merged({ OPENAI_API_KEY: secret, ANTHROPIC_API_KEY: 'sk-ant-secret-0123456789' }));
  assert.deepEqual(both.provider, {
    openai: { options: { baseURL: 'http://127.0.0.1:3129/openai' } },
    anthropic: { options: { baseURL: 'http://127.0.0.1:3129/anthropic/v1' } },
  });
  assert.equal(both.autoupdate, false);
  // Profiles without files generate none.
  assert.deepEqual(mergeProfile(loadProfile('codex'), emptyFile(), noFlags(), { env: { PATH: '/nonexistent' }, home }).files, []);
});

test('a credential route error names the section that defined it: the profile, latchgate.toml over the profile, or the standalone file', async (t) => {
  const { planEgress } = await import('../../dist/sandbox/box-egress.js');
  const { parseStandaloneSandboxConfig } = await import('../../dist/config/latchgate-toml.js');
  const home = tempDir(t);
  const p = loadProfile('claude-code');
  const net = { network: { resolve: new Map(), extraCaCerts: [] } };
  const plan = (file, env) => {
    const eff = mergeProfile(p, file, noFlags(), { env: { PATH: '/nonexistent', ...env }, home });
    return () => planEgress(eff.allowHosts, { ...file, ...net, credentials: eff.credentials }, { env }, '/etc/latchgate.toml', env ?? {});
  };
  const assertLaunchError = async (fn, _type, ...patterns) => {
    const e = await fn().then(() => assert.fail(`expected a LaunchError matching ${patterns.join(', ')}`), (x) => x);
    assert.ok(e instanceof LaunchError, `expected a LaunchError, got ${e?.stack ?? e}`);
    for (const pat of patterns) assert.ok(e.message.includes(pat), `${JSON.stringify(e.message)} should include ${JSON.stringify(pat)}`);
  };
  // Only in the profile: a key too short to redact.
  await assertLaunchError(plan(emptyFile(), { ANTHROPIC_API_KEY: 'short' }), LaunchError, `${p.file}: [credentials.anthropic]`, 'too short');
  // latchgate.toml over the profile: both are named.
  const cfg = { ...emptyFile(), credentials: new Map([['anthropic', { upstream: 'http://api.anthropic.com', origin: '/etc/latchgate.toml: [sandbox.agent.credentials.anthropic]' }]]) };
  await assertLaunchError(plan(cfg, { ANTHROPIC_API_KEY: 'sk-ant-0123456789' }), LaunchError, `/etc/latchgate.toml: [sandbox.agent.credentials.anthropic] (over ${p.file}: [credentials.anthropic])`, 'https://');
  // A standalone --sandbox-config file has the agent keys at its top level.
  const f = join(home, 'sb.toml');
  writeFileSync(f, '[credentials.mine]\nupstream = "https://x.example.com"\nheader = "x-api-key"\nkey_source = "env:MINE_KEY"\n');
  const standalone = parseStandaloneSandboxConfig(f, readFileSync(f, 'utf8'));
  await assertLaunchError(plan({ ...emptyFile(), credentials: standalone.credentials }, { MINE_KEY: 'tiny' }), LaunchError, `${f}: [credentials.mine]`, 'too short');
});

test('state files: expanded under the agent home, only when their directory exists; also_at paths become protected placeholders', (t) => {
  const home = tempDir(t);
  const p = loadProfile('claude-code');
  const merged = () => mergeProfile(p, emptyFile(), noFlags(), { env: { PATH: '/nonexistent' }, home });
  const eff = merged();
  assert.deepEqual(eff.stateFiles.map((f) => [f.path, f.alsoAt]), [[join(home, '.claude.json'), [join(home, '.claude/.config.json')]]]);
  assert.ok(!eff.rw.includes(join(home, '.claude.json')), 'the state file is never mounted read-write');
  assert.ok(!eff.protected.some((x) => x.path.endsWith('.config.json')), 'no ~/.claude: nothing to protect there');
  mkdirSync(join(home, '.claude'));
  const withDir = merged();
  assert.deepEqual(withDir.rw, [join(home, '.claude')]);
  assert.ok(withDir.protected.some((x) => x.path === join(home, '.claude/.config.json') && x.type === 'file'));
  const missingHome = mergeProfile(p, emptyFile(), noFlags(), { env: { PATH: '/nonexistent' }, home: join(home, 'nowhere') });
  assert.deepEqual(missingHome.stateFiles, [], 'a home that does not exist has no state file');
});
