// `latchgate policy replay` and `latchgate policy test`: a policy tried on
// the decisions the ledger recorded, and on cases kept in files. Neither
// changes anything. Exit codes: 0 it ran (replay: whatever changed; test:
// every case passed), 1 replay --fail-on-change found a change or a test
// case failed, 2 the policy, the test files or the ledger cannot be used.
import { Command, InvalidArgumentError, Option } from 'commander';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { displayText } from './safe-text.js';
import { print, type Out } from './gate-commands.js';
import type { ReplayReport } from '../policy/replay.js';
import type { TestRun } from '../policy/test-run.js';

/** The policy, the test files or the ledger cannot be used. */
export const EXIT_POLICY_UNUSABLE = 2;
/** replay --fail-on-change: a decision would change; test: a case failed. */
export const EXIT_POLICY_FINDING = 1;

function time(v: string): string {
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new InvalidArgumentError('expected a time in ISO 8601, e.g. 2025-01-31T12:00:00Z');
  return new Date(ms).toISOString();
}

async function loadPolicy(path: string) {
  const { loadPolicyAt, PolicyLoadError } = await import('../policy/candidate.js');
  try {
    return await loadPolicyAt(path);
  } catch (e) {
    if (e instanceof PolicyLoadError) throw new LaunchError(`the policy cannot be loaded: ${e.message}`, EXIT_POLICY_UNUSABLE);
    throw e;
  }
}

/** How many trace ids a table row lists. */
const TABLE_TRACES = 3;

function replayTable(r: ReplayReport): string {
  const t = displayText;
  const traces = (ids: string[]) => `${ids.slice(0, TABLE_TRACES).map(t).join(', ')}${ids.length > TABLE_TRACES ? `, ... (${ids.length - TABLE_TRACES} more; --format json lists all)` : ''}`;
  const lines = [
    `policy:    ${r.policy.engine} ${r.policy.files.map(t).join(', ')}`,
    `ledger:    ${t(r.ledger)} (policy data: ${r.data === 'recorded' ? 'as each decision had it, rebuilt from the chain' : 'the data the tables hold now'})`,
    `decisions: ${r.decisions} selected, ${r.replayed} replayed, ${r.not_replayable} not replayable${r.approved_runs ? `; ${r.approved_runs} approved run(s), decided by their held event` : ''}`,
    `changes:   ${r.changed === 0 ? 'none' : `${r.changed} decision(s) would change`}`,
  ];
  for (const g of r.changes) {
    lines.push(`  ${String(g.count).padStart(6)}  ${g.from} -> ${g.to}  ${t(g.action_id)}`, `          reason: ${t(g.reason)}`, `          was:    ${t(g.recorded_reason)}`, `          traces: ${traces(g.trace_ids)}`);
  }
  if (r.not_replayable_reasons.length) {
    lines.push('not replayable:');
    for (const s of r.not_replayable_reasons) lines.push(`  ${String(s.count).padStart(6)}  ${t(s.reason)}`, `          traces: ${traces(s.trace_ids)}`);
  }
  return lines.join('\n');
}

export function policyReplayCommand(): Command {
  return new Command('replay')
    .summary('re-decide the recorded decisions with another policy and report every one that would change (executes and writes nothing)')
    .requiredOption('--policy <dir>', 'the candidate: a directory with latchgate.cedar and latchgate.cedarschema, or with policy.wasm (opa build -t wasm)')
    .option('--config <file>', 'latchgate.toml (for the state directory holding the ledger)')
    .option('--ledger <file>', 'the ledger file (default: ledger.sqlite3 in the state directory)')
    .option('--since <time>', 'only decisions recorded at or after this time (ISO 8601)', time)
    .option('--until <time>', 'only decisions recorded before this time (ISO 8601)', time)
    .option('--action <id>', 'only decisions about this action')
    .addOption(new Option('--data <which>', 'the policy data: as each decision had it (recorded, rebuilt from the chain) or as the tables hold it now (current)').choices(['recorded', 'current']).default('recorded'))
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--json', 'same as --format json')
    .option('--fail-on-change', 'exit 1 when any decision would change (for CI)')
    .action(async (o: Out & { policy: string; ledger?: string; since?: string; until?: string; action?: string; data: 'recorded' | 'current'; format: string; failOnChange?: boolean }) => {
      const policy = await loadPolicy(o.policy);
      let ledger = o.ledger;
      if (ledger === undefined) {
        const { gateSetup, stateFiles } = await import('../gate/setup.js');
        ledger = stateFiles(gateSetup(o.config).stateDir).ledger;
      }
      const [{ replayLedgerFile }, { LedgerError }] = await Promise.all([import('../policy/replay.js'), import('../ledger/ledger.js')]);
      let report: ReplayReport;
      try {
        report = await replayLedgerFile(ledger, policy.engine, policy.files, {
          ...(o.since ? { since: o.since } : {}),
          ...(o.until ? { until: o.until } : {}),
          ...(o.action ? { action: o.action } : {}),
          data: o.data,
        });
      } catch (e) {
        if (e instanceof LedgerError) throw new LaunchError(e.message, EXIT_POLICY_UNUSABLE);
        throw e;
      }
      print({ json: o.json || o.format === 'json' }, report, () => replayTable(report));
      if (o.failOnChange && report.changed > 0) process.exitCode = EXIT_POLICY_FINDING;
    });
}

function testLines(run: TestRun): string {
  const t = displayText;
  const got = (r: TestRun['results'][number]) => `${r.got} (${t(r.deny_reason ?? (r.determining_policies.join(', ') || '-'))})`;
  const lines = run.results.map((r) => {
    const where = `${t(r.file)}${r.line !== undefined ? `:${r.line}` : ''}`;
    if (r.pass) return `ok    ${t(r.name)}  (${where})`;
    return `FAIL  ${t(r.name)}  (${where}): expected ${r.expect}${r.expect_reason !== undefined ? ` (${t(r.expect_reason)})` : ''}, got ${got(r)}`;
  });
  lines.push(`${run.passed} passed, ${run.failed} failed`);
  return lines.join('\n');
}

export function policyTestCommand(): Command {
  return new Command('test')
    .summary('run policy test cases (YAML or JSON files; see docs/POLICY-REPLAY.md) against a policy')
    .argument('[paths...]', 'test files, or directories of them (default: the tests/ directory beside the policy)')
    .option('--policy <dir>', 'the policy (default: the built-in policies/)')
    .option('--json', 'machine-readable output')
    .action(async (paths: string[], o: Out & { policy?: string }) => {
      const { DEFAULT_POLICY_DIR } = await import('../policy/engine.js');
      const dir = o.policy ?? DEFAULT_POLICY_DIR;
      const policy = await loadPolicy(dir);
      const { PolicyTestFileError, readPolicyTestFile, testFilesAt } = await import('../policy/test-file.js');
      if (paths.length === 0) {
        if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new LaunchError('give the test files (or their directory): the policy is not a directory with a tests/ beside it', EXIT_POLICY_UNUSABLE);
        paths = [join(dir, 'tests')];
      }
      // Every file is read before any case runs: each bad one is named, and nothing runs.
      const problems: string[] = [];
      const cases = [];
      for (const p of paths) {
        let files: string[] = [];
        try {
          files = testFilesAt(p);
        } catch (e) {
          if (!(e instanceof PolicyTestFileError)) throw e;
          problems.push(e.message);
        }
        for (const f of files) {
          try {
            cases.push(...readPolicyTestFile(f));
          } catch (e) {
            if (!(e instanceof PolicyTestFileError)) throw e;
            problems.push(e.message);
          }
        }
      }
      if (problems.length) throw new LaunchError(`bad policy test file${problems.length > 1 ? 's' : ''}:\n  ${problems.map(displayText).join('\n  ')}`, EXIT_POLICY_UNUSABLE);
      const { runPolicyTests } = await import('../policy/test-run.js');
      const run = await runPolicyTests(policy.engine, cases);
      print(o, { policy: policy.files, ...run }, () => testLines(run));
      if (run.failed > 0) process.exitCode = EXIT_POLICY_FINDING;
    });
}
