// `latchgate status` and `latchgate policy show` print what is left of the
// operator's budgets (per principal, per configured action), as text and
// with --json, from the shared state a gate left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { Agent, FIXTURE_MANIFESTS, grantAll, startGate } from '../helpers/gate.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

test('status and policy show print the budget left, text and --json', async (t) => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'latchgate-cli-budgets-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const stateDir = path.join(home, 'state');
  const cfgDir = path.join(home, 'config', 'latchgate');
  mkdirSync(cfgDir, { recursive: true });
  const me = process.getuid();
  const cfgFile = path.join(cfgDir, 'latchgate.toml');
  writeFileSync(
    cfgFile,
    [
      `[gate]\nmanifest_dirs = [${JSON.stringify(FIXTURE_MANIFESTS)}]`,
      `[state]\ndir = ${JSON.stringify(stateDir)}\nruntime_dir = ${JSON.stringify(path.join(home, 'run'))}`,
      `[identity.principals.${me}]\nname = "tester"\nscopes = ["tools:call"]`,
      `[operators.${os.userInfo().username}]\nuid = ${me}`,
      '[budgets.tester]\ncalls_per_day = 6\ncalls_per_lease = 4',
      '[budgets.tester.actions.t_costly]\ncalls_per_day = 2\ncost_per_day = 9',
      '',
    ].join('\n\n'),
  );
  // A gate on that state (the same budgets) spends some of it.
  const cfg = parseConfig(cfgFile, readFileSync(cfgFile, 'utf8')).gate;
  const g = await startGate({ stateDir, config: { budgets: cfg.budgets } });
  grantAll(g);
  const a = new Agent(g.socket);
  await a.lease();
  assert.equal((await a.execute('t_ok', { n: 1 })).status, 200);
  assert.equal((await a.execute('t_costly', { n: 1 })).status, 200);
  await g.close({ keepState: true });

  const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_CONFIG_HOME: path.join(home, 'config') };
  const lg = (...args) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };

  const st = JSON.parse(lg('status', '--json'));
  assert.equal(st.budgets.configured, true);
  const p = st.budgets.principals.find((x) => x.principal === 'tester');
  assert.equal(p.source, '[budgets.tester]');
  assert.deepEqual(p.day.calls, { limit: 6, used: 2, left: 4 });
  assert.deepEqual(p.leases.map((l) => [l.session_id, l.calls]), [[a.session_id, { limit: 4, used: 2, left: 2 }]]);
  const act = p.actions.find((x) => x.action_id === 't_costly');
  assert.deepEqual(act.day, { calls: { limit: 2, used: 1, left: 1 }, cost: { limit: 9, used: 3, left: 6 } });

  const text = lg('status');
  assert.match(text, /budgets: +configured/);
  assert.match(text, /tester \[budgets\.tester\]: today calls 4 left of 6, cost 3 used \(no limit\); per lease calls 4, cost no limit/);
  assert.match(text, /action t_costly: today calls 1 left of 2, cost 6 left of 9/);
  assert.match(text, new RegExp(`lease ${a.session_id} .*calls 2 left of 4`));

  const show = JSON.parse(lg('policy', 'show', 'tester', '--json'));
  assert.deepEqual(show.budgets.principals[0].day.calls, { limit: 6, used: 2, left: 4 });
  const showText = lg('policy', 'show', 'tester');
  assert.match(showText, /tester \[budgets\.tester\]: today calls 4 left of 6, cost 3 used \(no limit\); per lease calls 4, cost no limit/);
});
