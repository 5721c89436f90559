// Agent profiles inside a real box, in both launcher modes: the agent's own
// config directory under HOME is writable but its settings, rules and MCP
// files stay read-only (a missing one gets a placeholder of its type, which
// the agent can neither fill nor replace), and a profile's generated config
// file is there, read-only, naming the credential route and never the key.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, testUser, sh } from '../helpers/sandbox.mjs';
import { buildEscapeProbe } from '../helpers/escape-probe.mjs';
import { expectErr, expectOk, runProbes } from '../helpers/probe-calls.mjs';

const isRoot = process.getuid() === 0;
// The box's HOME is the test user's home on the host: only touched as root,
// where it belongs to the test user, never a developer's own home.
const notRoot = isRoot ? undefined : 'needs root: writes under the test user\'s home (/home/lgtest), which a non-root run would take from your own';
const PROBE = isRoot ? await buildEscapeProbe() : undefined;

let home;
let createdHome = false;
const cursor = () => path.join(home, '.cursor');
const exists = (p) => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

before(() => {
  if (!isRoot) return;
  const u = testUser();
  home = `/home/${u.name}`;
  if (!exists(home)) {
    fs.mkdirSync(home, { mode: 0o755 });
    fs.chownSync(home, u.uid, u.gid);
    createdHome = true;
  }
});

after(() => {
  if (home) fs.rmSync(cursor(), { recursive: true, force: true });
  if (createdHome) fs.rmSync(home, { recursive: true, force: true });
  cleanupWorkspaces();
});

/** A fresh ~/.cursor owned by the test user: a settings file, and no rules/ nor mcp.json yet. */
function freshCursorDir() {
  fs.rmSync(cursor(), { recursive: true, force: true });
  fs.mkdirSync(cursor(), { mode: 0o755 });
  fs.writeFileSync(path.join(cursor(), 'cli-config.json'), '{"orig":true}\n');
  const u = testUser();
  execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, cursor()]);
}

for (const mode of MODES) {
  describe(`${mode} launcher`, { skip: skipReason(mode) ?? notRoot }, () => {
    test('cursor profile: ~/.cursor is writable, its settings file and missing rules/ and mcp.json stay read-only', async () => {
      freshCursorDir();
      const c = (p) => `${home}/.cursor/${p}`;
      const { res, calls } = await runProbes(mode, PROBE, [
        ['legit-write', 'write', c('chats-x')],
        ['legit-read', 'read', c('cli-config.json')],
        ['write-settings', 'write', c('cli-config.json')],
        ['unlink-settings', 'unlink', c('cli-config.json')],
        ['replace-settings', 'rename', c('chats-x'), c('cli-config.json')],
        ['create-mcp', 'write', c('mcp.json')],
        ['fill-rules', 'write', c('rules/evil.mdc')],
        ['mkdir-in-rules', 'mkdir', c('rules/sub')],
        ['move-rules', 'rename', c('rules'), c('rules-old')],
        ['remove-rules', 'unlink', c('rules')],
      ], { workspace: makeWorkspace('profile'), args: ['--profile', 'cursor'], before: `[ -d ${c('rules')} ] && echo RULES-IS-DIR; ls -A ${c('rules')} | wc -l | sed 's/^/RULES-ENTRIES /'` });
      expectOk(calls, 'legit-write', res);
      expectOk(calls, 'legit-read', res);
      for (const k of ['write-settings', 'create-mcp', 'fill-rules', 'mkdir-in-rules']) expectErr(calls, k, ['EROFS', 'EACCES'], res);
      for (const k of ['unlink-settings', 'replace-settings', 'move-rules', 'remove-rules']) expectErr(calls, k, ['EBUSY', 'EROFS', 'EACCES', 'EISDIR', 'EPERM'], res);
      // A directory placeholder for rules/ (a file there would break an agent listing it), and empty.
      assert.match(res.stdout, /RULES-IS-DIR/, `~/.cursor/rules is a directory in the box\n${res.stdout}`);
      assert.match(res.stdout, /RULES-ENTRIES 0/);
      // On the host: the legitimate write persisted, the settings are the original, the placeholders are gone.
      assert.equal(fs.readFileSync(path.join(cursor(), 'chats-x'), 'utf8'), 'x');
      assert.equal(fs.readFileSync(path.join(cursor(), 'cli-config.json'), 'utf8'), '{"orig":true}\n');
      assert.ok(!exists(path.join(cursor(), 'rules')) && !exists(path.join(cursor(), 'mcp.json')) && !exists(path.join(cursor(), 'rules-old')), 'no placeholder is left on the host');
    });

    test('opencode profile: $OPENCODE_CONFIG is generated read-only with the route as base URL; the key stays outside', async () => {
      const secret = 'sk-opencode-host-only-0123456789';
      const script = [
        'echo "CFG=$OPENCODE_CONFIG"',
        'echo "KEY=$OPENAI_API_KEY"',
        'echo ==file; cat "$OPENCODE_CONFIG"; echo ==end',
        `(echo '{}' > "$OPENCODE_CONFIG") 2>/dev/null && echo OVERWROTE || echo WRITE-REFUSED`,
        `(rm -f "$OPENCODE_CONFIG") 2>/dev/null; [ -f "$OPENCODE_CONFIG" ] && echo STILL-THERE`,
        `grep -rs -- ${secret} /run /proc/self/environ "$HOME" >/dev/null && echo KEY-FOUND || echo KEY-ABSENT`,
      ].join('\n');
      const r = await sh(mode, script, { workspace: makeWorkspace('opencode'), args: ['--profile', 'opencode'], env: { OPENAI_API_KEY: secret }, timeoutMs: 30000 });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /^CFG=\/run\/latchgate\/opencode\.json$/m);
      assert.match(r.stdout, /^KEY=latchgate-placeholder$/m);
      const doc = JSON.parse(/==file\n([\s\S]*)==end/.exec(r.stdout)[1]);
      assert.deepEqual(doc.provider, { openai: { options: { baseURL: 'http://127.0.0.1:3129/openai' } } });
      assert.equal(doc.autoupdate, false);
      assert.match(r.stdout, /WRITE-REFUSED/);
      assert.match(r.stdout, /STILL-THERE/);
      assert.match(r.stdout, /KEY-ABSENT/);
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret));
    });
  });
}
