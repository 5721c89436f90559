// `latchgate profiles --json` and `latchgate sandbox --profile P --print-profile`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const run = (args, env = {}, cwd) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });

test('latchgate profiles --json lists names, aliases and default commands', () => {
  const r = run(['profiles', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const list = JSON.parse(r.stdout);
  assert.deepEqual(list.map((p) => p.name).sort(), ['aider', 'claude-code', 'codex', 'cursor', 'opencode']);
  const claude = list.find((p) => p.name === 'claude-code');
  assert.deepEqual(claude.aliases, ['claude']);
  assert.deepEqual(claude.command, ['claude']);
  const plain = run(['profiles']);
  assert.equal(plain.status, 0);
  const [header, ...rows] = plain.stdout.trimEnd().split('\n');
  assert.match(header, /^NAME +COMMAND +ALIASES +DESCRIPTION$/);
  assert.deepEqual(rows.map((r) => r.split(/ {2,}/)[0]), list.map((p) => p.name), 'one row per profile, in --json order');
  assert.ok(rows.some((r) => /^codex +codex +openai-codex +OpenAI/.test(r)));
});

test('--print-profile prints the merged profile and never the key', (t) => {
  const ws = tempDir(t);
  const cfg = join(ws, 'latchgate.toml');
  writeFileSync(cfg, '[sandbox.agent]\nallow_hosts = ["cfg.example.com"]\n[sandbox.agent.credentials.openai]\nupstream = "https://api.openai.com/v1"\nheader = "Authorization"\nformat = "Bearer {}"\nkey_source = "env:OPENAI_API_KEY"\n');
  const secret = 'sk-ant-very-secret-0123456789';
  // Its allow_hosts and credential route are grants: trusted first, in this test's own state.
  const xdg = { XDG_STATE_HOME: join(ws, 'state'), XDG_CONFIG_HOME: join(ws, 'cfg') };
  const trusted = run(['trust', cfg], xdg);
  assert.equal(trusted.status, 0, trusted.stderr);
  const r = run(['sandbox', '--profile', 'claude', '--print-profile', '--config', cfg, '--workspace', ws, '--allow-host', 'flag.example.com'], { ...xdg, ANTHROPIC_API_KEY: secret, OPENAI_API_KEY: secret + '-oai' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret));
  const out = JSON.parse(r.stdout);
  assert.equal(out.profile, 'claude-code');
  assert.deepEqual(out.allow_hosts.slice(-2), ['cfg.example.com', 'flag.example.com']);
  assert.equal(out.env.ANTHROPIC_API_KEY, 'latchgate-placeholder');
  assert.equal(out.credentials.anthropic.key_resolved, true);
  assert.equal(out.credentials.openai.from, 'config');
  assert.equal(out.credentials.anthropic.base_url, 'http://127.0.0.1:3129/anthropic');
  const none = run(['sandbox', '--print-profile', '--workspace', ws]);
  assert.equal(none.status, 125);
  assert.match(none.stderr, /--print-profile: give --profile NAME/);
  const bad = run(['sandbox', '--profile', 'codx', '--print-profile', '--workspace', ws]);
  assert.equal(bad.status, 125);
  assert.match(bad.stderr, /did you mean "codex"\?/);
});
