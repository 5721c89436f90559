// Built-in profile files: load, validate, aliases; bad keys refused with suggestions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadProfiles, loadProfile, parseProfile } from '../../dist/config/profiles.js';
import { LaunchError } from '../../dist/core/errors.js';
import { assertLaunchError, tempDir } from '../fixtures/unit/helpers.mjs';

test('every built-in profile loads with hosts, command and home paths', () => {
  const all = loadProfiles();
  assert.deepEqual([...all.keys()].sort(), ['aider', 'claude-code', 'codex', 'cursor', 'opencode']);
  for (const p of all.values()) {
    // What the host's agent runs from its cache is never shared with the box.
    assert.ok(!p.rwPaths.some((r) => r.startsWith('~/.cache/')), `${p.name}: a cache the host executes is read-write`);
    assert.ok(p.command.length > 0 && !p.command[0].includes('/'), p.name);
    assert.ok(p.allowHosts.length > 0, p.name);
    for (const r of [...p.rwPaths, ...p.protected]) assert.match(r, /^~\//);
    for (const [, r] of p.credentials) assert.match(r.keySource, /^env:/);
  }
  const claude = all.get('claude-code');
  assert.ok(claude.rwPaths.includes('~/.claude') && !claude.rwPaths.includes('~/.claude.json'), '~/.claude.json is a state file, never mounted read-write');
  assert.deepEqual(claude.stateFiles.map((f) => [f.name, f.path, f.format, f.alsoAt]), [['claude', '~/.claude.json', 'json', ['~/.claude/.config.json']]]);
  for (const k of ['mcpServers', 'allowedTools', 'hasTrustDialogAccepted', 'enabledMcpjsonServers', 'enableAllProjectMcpServers', 'apiKeyHelper', 'env', 'primaryApiKey', 'customApiKeyResponses']) {
    assert.ok(claude.stateFiles[0].hostOnlyKeys.includes(k), `${k} is host-only`);
  }
  assert.ok(claude.stateFiles[0].boxKeys.includes('numStartups'));
  assert.ok(claude.protected.includes('~/.claude/settings.json'));
  assert.equal(claude.credentials.get('anthropic').placeholderEnv.ANTHROPIC_API_KEY, 'latchgate-placeholder');
  const codex = all.get('codex');
  assert.ok(codex.protected.includes('~/.codex/config.toml'));
  assert.ok(codex.args.join(' ').includes('sandbox_mode="danger-full-access"'));
  assert.ok(codex.credentials.get('openai').args.some((a) => a.includes('{route_url}')));
  // What each host agent later runs from its own tree is read-only in the box.
  const must = {
    'claude-code': ['~/.claude/skills/', '~/.claude/local/', '~/.claude/scheduled_tasks.json', '~/.claude/backups/', '~/.claude/shell-snapshots/'],
    codex: ['~/.codex/hooks.json', '~/.codex/hooks/', '~/.codex/plugins/', '~/.codex/packages/', '~/.codex/.env'],
    cursor: ['~/.cursor/hooks.json', '~/.cursor/extensions/', '~/.cursor/argv.json'],
    opencode: ['~/.config/opencode/plugins/', '~/.config/opencode/tools/', '~/.config/opencode/node_modules/', '~/.local/share/opencode/snapshot/', '~/.local/share/opencode/bin/'],
    aider: ['~/.aider/oauth-keys.env', '~/.aider/analytics.json'],
  };
  for (const [name, paths] of Object.entries(must)) for (const x of paths) assert.ok(all.get(name).protected.includes(x), `${name}: ${x} is protected`);
  assert.match(all.get('opencode').files.get('config').json, /"snapshot": false/);
});

test('aliases resolve to the canonical profile', () => {
  assert.equal(loadProfile('claude').name, 'claude-code');
  assert.equal(loadProfile('openai-codex').name, 'codex');
  assertLaunchError(() => loadProfile('claud'), LaunchError, 'unknown profile', 'did you mean "claude"?');
});

test('unknown keys are refused with the file, the key and the nearest name', () => {
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"]\nallow_host = ["a.com"]\n'), LaunchError, '/p/x.toml', 'key "allow_host"', 'did you mean "allow_hosts"?');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"]\n[credentials.a]\nupstream="https://a"\nheader="h"\nkey_source="env:A"\nkey_sorce="env:A"\n'), LaunchError, '[credentials.a] key "key_sorce"', 'did you mean "key_source"?');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = "x"\n'), LaunchError, 'key "command"', 'expected an array of strings');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["/usr/bin/x"]\n'), LaunchError, 'key "command"');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"]\nrw_paths = ["/etc"]\n'), LaunchError, 'key "rw_paths"', '"~/..."');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"]\nrw_paths = ["~/../etc"]\n'), LaunchError, 'key "rw_paths"');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"]\nrw_paths = ["~/.x"]\nprotected = ["~/.y/z"]\n'), LaunchError, 'key "protected"', 'not under any rw_paths');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"]\n[credentials.a]\nupstream="https://a"\nheader="h"\n'), LaunchError, '[credentials.a] key "key_source": required');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"]\n[credentials.a]\nupstream="https://a"\nheader="h"\nkey_source="file:k"\n'), LaunchError, '[credentials.a] key "key_source" "file:k": after "file:" comes an absolute path', '"sops:NAME"');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"]\n[credentials.a]\nupstream="https://a"\nheader="h"\nformat="Bearer"\nkey_source="env:A"\n'), LaunchError, 'key "format"', '{}');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', 'command = ["x"\n'), LaunchError, '/p/x.toml', 'not valid TOML');
});

test('duplicate aliases across files are refused', (t) => {
  const d = tempDir(t);
  writeFileSync(join(d, 'a.toml'), 'command = ["a"]\naliases = ["z"]\nallow_hosts=["a.com"]\n');
  writeFileSync(join(d, 'b.toml'), 'command = ["b"]\naliases = ["z"]\nallow_hosts=["b.com"]\n');
  assertLaunchError(() => loadProfiles(d), LaunchError, 'b.toml', 'z is already');
});

test('generated files: path, env, JSON and the routes that name them are checked, with the file and key named', () => {
  const base = 'command = ["x"]\n[files.cfg]\npath = "/run/latchgate/x.json"\nenv = "X_CONFIG"\njson = \'{"a": 1}\'\n';
  const route = (files) => `[credentials.a]\nupstream="https://a"\nheader="h"\nkey_source="env:A"\nfiles = ${files}\n`;
  const ok = parseProfile('x', '/p/x.toml', base + route(`{ cfg = '{"b": "{route_url}"}' }`));
  assert.deepEqual(ok.files.get('cfg'), { path: '/run/latchgate/x.json', env: 'X_CONFIG', json: '{"a": 1}' });
  assert.deepEqual({ ...ok.credentials.get('a').files }, { cfg: '{"b": "{route_url}"}' });
  // Outside /run/latchgate, the gate's socket, a subdirectory, dot-dot:
  for (const path of ['/etc/x.json', '/run/latchgate/gate.sock', '/run/latchgate/a/b.json', '/run/latchgate/../x', '/run/latchgate/.x']) {
    assertLaunchError(() => parseProfile('x', '/p/x.toml', base.replace('/run/latchgate/x.json', path)), LaunchError, '/p/x.toml', '[files.cfg] key "path"', 'expected a file directly under /run/latchgate/');
  }
  assertLaunchError(() => parseProfile('x', '/p/x.toml', base.replace('X_CONFIG', 'X-CONFIG')), LaunchError, '[files.cfg] key "env"');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', base.replace('{"a": 1}', '{"a": ')), LaunchError, '[files.cfg] key "json"', 'not valid JSON');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', base.replace('{"a": 1}', '[1]')), LaunchError, '[files.cfg] key "json"', 'expected a JSON object');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', base + route(`{ cgf = '{}' }`)), LaunchError, '[credentials.a] key "files"', 'no [files.cgf]', 'did you mean "cfg"?');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', base + route(`{ cfg = '{"b": ' }`)), LaunchError, '[credentials.a] key "files.cfg"', 'not valid JSON');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', base + '[files.cfg2]\npath = "/run/latchgate/x.json"\nenv = "Y"\njson = \'{}\'\n'), LaunchError, '[files.cfg2] key "path"', 'already the path');
  assertLaunchError(() => parseProfile('x', '/p/x.toml', base.replace('path = ', 'paht = ')), LaunchError, '[files.cfg] key "paht"', 'did you mean "path"?');
});

test('state files: path, format, key rules and also_at are checked, with the table and key named', () => {
  const base = 'command = ["x"]\nrw_paths = ["~/.x"]\n[state_files.st]\npath = "~/.x.json"\nformat = "json"\nbox_keys = ["count", "projects.*.last"]\nhost_only_keys = ["servers"]\nalso_at = ["~/.x/alt.json"]\n';
  const ok = parseProfile('x', '/p/x.toml', base);
  assert.deepEqual(ok.stateFiles, [{ name: 'st', path: '~/.x.json', format: 'json', alsoAt: ['~/.x/alt.json'], boxKeys: ['count', 'projects.*.last'], hostOnlyKeys: ['servers'] }]);
  const bad = (from, to, ...patterns) => assertLaunchError(() => parseProfile('x', '/p/x.toml', base.replace(from, to)), LaunchError, '/p/x.toml', ...patterns);
  bad('format = "json"\n', '', '[state_files.st] key "format": required');
  bad('format = "json"', 'format = "yaml"', '[state_files.st] key "format": expected "json"');
  bad('path = "~/.x.json"', 'path = "/etc/x.json"', '[state_files.st] key "path"', '"~/..."');
  bad('path = "~/.x.json"', 'path = "~/../x.json"', '[state_files.st] key "path"');
  bad('path = "~/.x.json"', 'path = "~/.x/inside.json"', '[state_files.st] key "path"', 'inside rw_paths entry ~/.x');
  bad('box_keys = ["count", "projects.*.last"]', 'box_keys = ["projects.*.servers"]', '[state_files.st] key "box_keys"', 'names servers, which is in host_only_keys');
  bad('box_keys = ["count", "projects.*.last"]', 'box_keys = ["a..b"]', '[state_files.st] key "box_keys"');
  bad('box_keys = ["count", "projects.*.last"]', 'box_keys = []', '[state_files.st] key "box_keys": required');
  bad('box_keys = ["count", "projects.*.last"]\n', '', '[state_files.st] key "box_keys": required');
  bad('host_only_keys = ["servers"]', 'host_only_keys = ["a.b"]', '[state_files.st] key "host_only_keys"');
  bad('also_at = ["~/.x/alt.json"]', 'also_at = ["~/.y/alt.json"]', '[state_files.st] key "also_at"', 'not inside any rw_paths entry');
  bad('[state_files.st]', '[state_files.St]', '[state_files.St]', 'lowercase');
  bad('box_keys =', 'box_key =', '[state_files.st] key "box_key"', 'did you mean "box_keys"?');
  bad('[state_files.st]', '[files.st]\npath = "/run/latchgate/state"\nenv = "X"\njson = \'{}\'\n[state_files.st]', '[files.st] key "path"');
});
