// `latchgate mcp install` for every client, run as the CLI with HOME,
// XDG_CONFIG_HOME and CODEX_HOME pointed at a temporary directory: the file
// created; merged into a file with other servers and settings (kept as they
// were, TOML comments too); a second run changes nothing; --dry-run writes
// nothing; --remove removes latchgate's entry only; a file that does not
// parse is refused and left as it was; the file's mode and a symbolic link
// are kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { tempDir } from '../helpers/gate-faults.mjs';
import { CLI } from '../helpers/mcp.mjs';

/** A home, a project directory, and the CLI run there. */
function sandbox(t) {
  const root = tempDir(t, 'latchgate-mcp-install-');
  const home = path.join(root, 'home');
  const project = path.join(root, 'project');
  mkdirSync(home);
  mkdirSync(project);
  const run = (...args) => runCli(args, { cwd: project, env: { PATH: process.env.PATH, HOME: home } });
  return { home, project, run };
}

/** Runs `latchgate mcp install ...args`; resolves { code, out, err } (spawned asynchronously: the clients' runs go in parallel). */
function runCli(args, opts) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, 'mcp', 'install', ...args], { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out, err }));
  });
}

const USER_FILES = {
  'claude-code': ['.claude.json', 'mcpServers'],
  codex: ['.codex/config.toml', 'mcp_servers'],
  cursor: ['.cursor/mcp.json', 'mcpServers'],
  opencode: ['.config/opencode/opencode.json', 'mcp'],
  vscode: ['.config/Code/User/mcp.json', 'servers'],
  windsurf: ['.codeium/windsurf/mcp_config.json', 'mcpServers'],
  cline: ['.config/Code/User/globalStorage/saoudrizwon.claude-dev/settings/cline_mcp_settings.json', 'mcpServers'],
};
const PROJECT_FILES = { 'claude-code': '.mcp.json', cursor: '.cursor/mcp.json', opencode: 'opencode.json', vscode: '.vscode/mcp.json' };

const read = (file) => (file.endsWith('.toml') ? parseToml(readFileSync(file, 'utf8')) : JSON.parse(readFileSync(file, 'utf8')));
const SERVE = [CLI, 'mcp', 'serve'];

/** The entry as the client reads it: what it starts. */
function started(client, entry) {
  if (client === 'opencode') {
    assert.equal(entry.type, 'local');
    assert.equal(entry.enabled, true);
    return entry.command;
  }
  if (client === 'claude-code' || client === 'vscode') assert.equal(entry.type, 'stdio');
  return [entry.command, ...entry.args];
}

test('each client, user scope: the file is created with an entry that starts this node and this CLI by absolute path', async (t) => {
  const s = sandbox(t);
  await Promise.all(Object.entries(USER_FILES).map(async ([client, [rel, key]]) => {
    const r = await s.run('--client', client);
    assert.equal(r.code, 0, r.err);
    const file = path.join(s.home, rel);
    assert.match(r.out, new RegExp(`${client} \\(user scope\\): created ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(r.out, /^\+ /m, 'the diff shows the entry added');
    const doc = read(file);
    assert.deepEqual(Object.keys(doc), [key]);
    assert.deepEqual(Object.keys(doc[key]), ['latchgate']);
    assert.deepEqual(started(client, doc[key].latchgate), [process.execPath, ...SERVE]);
    assert.ok(path.isAbsolute(process.execPath) && path.isAbsolute(CLI));
  }));
});

test('project scope: claude-code, cursor, opencode and vscode write into the working directory; the others refuse it', async (t) => {
  const s = sandbox(t);
  await Promise.all(Object.entries(PROJECT_FILES).map(async ([client, rel]) => {
    const r = await s.run('--client', client, '--scope', 'project', '--wait-approval', '30');
    assert.equal(r.code, 0, r.err);
    const doc = read(path.join(s.project, rel));
    const entry = doc[USER_FILES[client][1]].latchgate;
    assert.deepEqual(started(client, entry), [process.execPath, ...SERVE, '--wait-approval', '30']);
  }));
  for (const client of ['codex', 'windsurf', 'cline']) {
    const r = await s.run('--client', client, '--scope', 'project');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /has no project-scope MCP configuration; use --scope user/);
  }
  assert.deepEqual(readdir(s.home), [], 'nothing written in the home');
});

const readdir = (d) => readdirSync(d, { recursive: true }).filter((f) => statSync(path.join(d, f)).isFile());

/** A file of the client's with other servers and settings in it. */
function existing(client) {
  if (client === 'codex') {
    return `# my codex settings\nmodel = "o3"\n\n[mcp_servers.other]\ncommand = "other-server"  # keep me\nargs = ["--flag"]\n\n[profiles.fast]\nmodel = "o4-mini"\n`;
  }
  const key = USER_FILES[client][1];
  return `${JSON.stringify({ theme: 'dark', numbers: [1, 2.5, { deep: null }], [key]: { other: { command: 'other-server', args: ['--flag'], env: { A: 'b' } } }, zzz: true }, null, 4)}\n`;
}

/** The document without latchgate's entry. */
function withoutEntry(doc, key) {
  const d = JSON.parse(JSON.stringify(doc));
  delete d[key].latchgate;
  return d;
}

test('merge into an existing file: every other server and setting kept; a second run changes nothing; --remove removes latchgate only', async (t) => {
  const s = sandbox(t);
  await Promise.all(Object.entries(USER_FILES).map(async ([client, [rel, key]]) => {
    const file = path.join(s.home, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    const original = existing(client);
    writeFileSync(file, original);
    chmodSync(file, 0o640);
    const before = JSON.parse(JSON.stringify(read(file)));

    const r1 = await s.run('--client', client);
    assert.equal(r1.code, 0, r1.err);
    assert.match(r1.out, / updated /);
    const after = read(file);
    assert.deepEqual(withoutEntry(after, key), before, `${client}: the rest is as it was`);
    assert.deepEqual(started(client, after[key].latchgate), [process.execPath, ...SERVE]);
    assert.equal(statSync(file).mode & 0o777, 0o640, `${client}: the mode kept`);
    if (client === 'codex') {
      const text = readFileSync(file, 'utf8');
      assert.match(text, /^# my codex settings$/m, 'TOML comments kept');
      assert.match(text, /# keep me/);
    } else {
      assert.match(readFileSync(file, 'utf8'), /^ {4}"theme"/m, 'the file\'s indentation kept');
    }

    const bytes = readFileSync(file);
    const mtime = statSync(file).mtimeMs;
    const r2 = await s.run('--client', client);
    assert.equal(r2.code, 0, r2.err);
    assert.match(r2.out, /no change: the latchgate entry is already in/);
    assert.deepEqual(readFileSync(file), bytes, `${client}: a second run rewrites nothing`);
    assert.equal(statSync(file).mtimeMs, mtime);

    const r3 = await s.run('--client', client, '--remove');
    assert.equal(r3.code, 0, r3.err);
    assert.match(r3.out, /removed the latchgate entry from/);
    assert.match(r3.out, /^- /m);
    const removed = read(file);
    assert.deepEqual(JSON.parse(JSON.stringify(removed)), before, `${client}: only latchgate removed`);
    const r4 = await s.run('--client', client, '--remove');
    assert.match(r4.out, /no change: there is no latchgate entry/);
  }));
});

test('codex: install and remove in a commented config.toml with no other server: the comments and other tables stay', async (t) => {
  const s = sandbox(t);
  const file = path.join(s.home, '.codex', 'config.toml');
  mkdirSync(path.dirname(file));
  const original = '# top comment\nmodel = "o3" # inline\n\n[profiles.fast]\nmodel = "o4-mini"\n';
  writeFileSync(file, original);
  assert.equal((await s.run('--client', 'codex')).code, 0);
  assert.match(readFileSync(file, 'utf8'), /^# top comment\nmodel = "o3" # inline\n/);
  assert.equal((await s.run('--client', 'codex', '--remove')).code, 0);
  assert.equal(readFileSync(file, 'utf8'), original, 'byte for byte what it was');
});

test('--dry-run writes nothing, and shows the change', async (t) => {
  const s = sandbox(t);
  const r = await s.run('--client', 'cursor', '--dry-run');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /would create .*\(dry run: nothing written\)/);
  assert.match(r.out, /^\+ /m);
  assert.equal(existsSync(path.join(s.home, '.cursor')), false);
  const file = path.join(s.home, '.codex', 'config.toml');
  mkdirSync(path.dirname(file));
  writeFileSync(file, existing('codex'));
  const bytes = readFileSync(file);
  const d = await s.run('--client', 'codex', '--dry-run');
  assert.match(d.out, /would update/);
  assert.match(d.out, /^\+ \[mcp_servers\.latchgate\]$/m);
  assert.deepEqual(readFileSync(file), bytes);
  // An entry that differs (another socket) is shown before and after.
  await s.run('--client', 'codex');
  const changed = await s.run('--client', 'codex', '--socket', '/run/other.sock', '--dry-run');
  assert.match(changed.out, /^- args = /m);
  assert.match(changed.out, /^\+ args = .*\/run\/other\.sock/m);
});

test('a file that does not parse is refused, named with the parse error, and left as it was', async (t) => {
  const s = sandbox(t);
  const cases = { 'claude-code': '{"mcpServers": {"other": {}},, }', codex: '[mcp_servers.other\ncommand = "x"\n', vscode: '// comments are not JSON\n{"servers": {}}', cursor: '[1, 2]', windsurf: '{"mcpServers": ["not", "a", "table"]}' };
  await Promise.all(Object.entries(cases).map(async ([client, text]) => {
    const file = path.join(s.home, USER_FILES[client][0]);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    for (const extra of [[], ['--remove']]) {
      const r = await s.run('--client', client, ...extra);
      assert.notEqual(r.code, 0, `${client}: refused`);
      assert.ok(r.err.includes(file), `${client}: the error names the file: ${r.err}`);
      assert.match(r.err, /nothing was written/);
      assert.equal(readFileSync(file, 'utf8'), text, `${client}: untouched`);
    }
  }));
  assert.match((await s.run('--client', 'claude-code')).err, /is not valid JSON \(/);
  assert.match((await s.run('--client', 'codex')).err, /is not valid TOML \(/);
});

test('a configuration file that is a symbolic link: the link is kept and its target updated', async (t) => {
  const s = sandbox(t);
  const target = path.join(s.home, 'dotfiles-claude.json');
  writeFileSync(target, '{"keep": 1}\n');
  symlinkSync(target, path.join(s.home, '.claude.json'));
  const r = await s.run('--client', 'claude-code');
  assert.equal(r.code, 0, r.err);
  assert.ok(lstatSync(path.join(s.home, '.claude.json')).isSymbolicLink());
  assert.equal(readlinkSync(path.join(s.home, '.claude.json')), target);
  const doc = JSON.parse(readFileSync(target, 'utf8'));
  assert.equal(doc.keep, 1);
  assert.ok(doc.mcpServers.latchgate);
});

test('XDG_CONFIG_HOME and CODEX_HOME are honoured', async (t) => {
  const s = sandbox(t);
  const xdg = path.join(s.home, 'xdg');
  const codex = path.join(s.home, 'codex-home');
  for (const [client, env, file] of [['opencode', { XDG_CONFIG_HOME: xdg }, path.join(xdg, 'opencode', 'opencode.json')], ['codex', { CODEX_HOME: codex }, path.join(codex, 'config.toml')]]) {
    const r = await runCli(['--client', client], { cwd: s.project, env: { PATH: process.env.PATH, HOME: s.home, ...env } });
    assert.equal(r.code, 0, r.err);
    assert.ok(existsSync(file), file);
  }
});
