// Runs policy test cases (src/policy/test-file.ts) against a policy engine:
// each case's decision against what it expects. A case passes when the
// outcome (allow, deny, pending_approval) is the one expected and, when it
// names a reason, the decision has that reason: a deny's deny_reason, or the
// id of the policy that named it (the first determining policy; others that
// also denied do not count, so a case can pin which rule wins); an allow's
// determining policies include that id.
import type { PolicyEngine } from './engine.js';
import { outcomeOf, type Outcome } from './replay.js';
import type { PolicyTestCase } from './test-file.js';

export interface CaseResult {
  file: string;
  line: number | undefined;
  name: string;
  pass: boolean;
  expect: Outcome;
  expect_reason?: string;
  got: Outcome;
  deny_reason?: string;
  determining_policies: string[];
}

export interface TestRun {
  results: CaseResult[];
  passed: number;
  failed: number;
}

export async function runPolicyTests(engine: PolicyEngine, cases: readonly PolicyTestCase[]): Promise<TestRun> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    const d = await engine.decide(c.input, c.data);
    const got = outcomeOf(d);
    const reasonOk = c.expect_reason === undefined || (d.allow ? d.determining_policies.includes(c.expect_reason) : d.deny_reason === c.expect_reason || d.determining_policies[0] === c.expect_reason);
    results.push({
      file: c.file,
      line: c.line,
      name: c.name,
      pass: got === c.expect && reasonOk,
      expect: c.expect,
      ...(c.expect_reason !== undefined ? { expect_reason: c.expect_reason } : {}),
      got,
      ...(d.deny_reason !== undefined ? { deny_reason: d.deny_reason } : {}),
      determining_policies: d.determining_policies,
    });
  }
  const passed = results.filter((r) => r.pass).length;
  return { results, passed, failed: results.length - passed };
}
