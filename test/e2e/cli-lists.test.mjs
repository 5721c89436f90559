// Every list the CLI prints for a person is a table whose first line names
// its columns, each the --json field it shows upper-cased, with one row per
// item in --json order; --json stays the list scripts read. Checked on real
// state: profiles, actions, policy, tokens, approvals (one pending, asked by
// an agent through a running `latchgate up`), secrets and their recipients,
// audit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from '../helpers/gate.mjs';
import { spawnUp } from '../helpers/up.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const manifests = fileURLToPath(new URL('../fixtures/cli-manifests', import.meta.url));
const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-lists-'));
const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_RUNTIME_DIR: path.join(home, 'run'), XDG_CONFIG_HOME: path.join(home, 'config') };
const me = os.userInfo().username;
let up;

function lg(args, input) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, input, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ok(args, input) {
  const r = lg(args, input);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
  return r;
}

before(async () => {
  const cfgDir = path.join(home, 'config', 'latchgate');
  mkdirSync(cfgDir, { recursive: true });
  writeFileSync(path.join(cfgDir, 'latchgate.toml'), `[gate]\nmanifest_dirs = [${JSON.stringify(manifests)}]\n\n[identity.principals.${process.getuid()}]\nname = "${me}"\nscopes = ["tools:call"]\n\n[operators.${me}]\nuid = ${process.getuid()}\n`);
  ok(['policy', 'grant', me, 't_noop,t_noop_high']);
  ok(['tokens', 'create', '--principal', 'lists-client']);
  ok(['secrets', 'init']);
  ok(['secrets', 'set', 'LISTS_KEY'], 'value');
  const started = await spawnUp(CLI, { env });
  up = started.proc;
  const { ready } = started;
  assert.equal(ready?.status, 'ready', `up: ${started.output()}`);
  const agent = new Agent(ready.client_socket);
  await agent.lease();
  assert.equal((await agent.execute('t_noop_high', { n: 1 })).status, 202, 'a pending approval to list');
});

after(async () => {
  if (up && up.exitCode === null) {
    up.kill('SIGTERM');
    await new Promise((r) => up.once('exit', r));
  }
  rmSync(home, { recursive: true, force: true });
});

/**
 * Each list: its arguments, the table's header, the items of its --json
 * output, and the columns that are not a field of an item (derived, or a
 * field inside one).
 */
const LISTS = [
  { args: ['profiles'], header: ['NAME', 'COMMAND', 'ALIASES', 'DESCRIPTION'] },
  { args: ['actions'], header: ['ACTION_ID', 'VERSION', 'RISK_LEVEL', 'DECLARED_SIDE_EFFECTS'] },
  { args: ['policy', 'list'], header: ['PRINCIPAL', 'ALLOWED_ACTIONS', 'ALLOWED_SINKS', 'INHERITS_WILDCARD'] },
  { args: ['tokens', 'list'], header: ['TOKEN_ID', 'PRINCIPAL', 'SCOPES', 'STATE'], derived: ['STATE'] },
  { args: ['approvals', 'list'], header: ['APPROVAL_ID', 'STATUS', 'ACTION_ID', 'PRINCIPAL', 'EXPIRES_AT'] },
  { args: ['secrets', 'list'], header: ['NAME', 'CHANGED'], items: (j) => j.secrets },
  { args: ['secrets', 'recipients', 'list'], header: ['RECIPIENT'], first: (item) => item },
  { args: ['audit', '-l', '5'], header: ['TIMESTAMP', 'EVENT_TYPE', 'DECISION', 'PRINCIPAL', 'ACTION_ID', 'HOST', 'REASON', 'ERROR', 'TRACE_ID'], derived: ['PRINCIPAL', 'ACTION_ID', 'HOST', 'REASON', 'ERROR'] },
];

for (const l of LISTS) {
  test(`latchgate ${l.args.join(' ')}: a header naming the --json fields, then one row per item`, () => {
    const items = (l.items ?? ((j) => j))(JSON.parse(ok([...l.args, '--json']).out));
    assert.ok(Array.isArray(items) && items.length > 0, 'something to list');
    const [header, ...rows] = ok(l.args).out.trimEnd().split('\n');
    assert.deepEqual(header.split(/ {2,}/), l.header);
    assert.equal(rows.length, items.length, rows.join('\n'));
    // Columns line up under their names: each row's first cell is its item's first field.
    const first = l.first ?? ((item) => String(item[l.header[0].toLowerCase()]));
    assert.deepEqual(rows.map((r) => r.split(/ {2,}/)[0]), items.map(first));
    // Every cell starts under its column's name.
    const starts = l.header.map((h) => header.indexOf(h));
    for (const r of rows) for (const at of starts.slice(1)) assert.ok(r[at - 1] === ' ' && /\S/.test(r[at] ?? ''), `a cell at column ${at} of ${JSON.stringify(r)}`);
    if (typeof items[0] === 'object') {
      for (const h of l.header) if (!(l.derived ?? []).includes(h)) assert.ok(items.some((i) => h.toLowerCase() in i), `${h} is the --json field ${h.toLowerCase()}`);
    }
  });
}

test('an empty list says so in words, without a header; --json is an empty array', () => {
  ok(['approvals', 'deny', JSON.parse(ok(['approvals', 'list', '--json']).out)[0].approval_id]);
  assert.equal(ok(['approvals', 'list']).out, 'no approvals\n');
  assert.deepEqual(JSON.parse(ok(['approvals', 'list', '--json']).out), []);
});
