// The gate's operator commands. They work on the shared state directly (the
// same SQLite file `latchgate up` and every sandbox use), so they also work
// when no gate is running; the local uid must be an operator, and every act
// that changes something is recorded with that operator's name.
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import type { AuditFormat } from '../ledger/format.js';
import { GateError } from '../gate/errors.js';
import { LaunchError } from '../core/errors.js';
import { EVENT_CATALOGUE, EVENT_TYPES, EVENT_TYPE_GROUPS, isEventType, type EventType } from '../core/event-catalogue.js';
import { closest } from '../config/suggest.js';
import { canonicalHash, canonicalize } from '../crypto/jcs.js';
import { displayJson, displayLines, displayText, safeJson, safeJsonText } from './safe-text.js';
import { actionLines } from './action-view.js';
import { textTable } from '../core/text-table.js';
import { policyReplayCommand, policyTestCommand } from './policy-tools.js';
import { budgetLines, budgetReport, type BudgetReport } from '../gate/budget-report.js';
import { ROTATION_WAIT_DEFAULT_SECONDS, ROTATION_WAIT_MAX_SECONDS, type RotationReport } from '../gate/rotation.js';
import { gateSetup, localOperator, openSharedGate, stateFiles, type GateSetup } from '../gate/setup.js';

export type Out = { json?: boolean; config?: string };

/** Output may carry agents' text: --json keeps it exact but terminal-safe, human output escapes whatever a terminal would act on or hide. */
export function print(o: Out, value: unknown, text: () => string): void {
  process.stdout.write(o.json ? safeJson(value, 2) + '\n' : displayLines(text()) + '\n');
}

/**
 * One approval for an operator: the plan's fields, the request as the agent
 * sent it, and its exact canonical form (the bytes request_hash is over),
 * every hidden character shown as an escape.
 */
export function renderApproval(a: Record<string, unknown>): string {
  const plan = (a.plan ?? {}) as { core?: Record<string, unknown>; request?: unknown };
  const core = plan.core ?? {};
  const t = displayText;
  const lines = [
    `approval      ${t(a.approval_id)}  ${t(a.status)}`,
    `action        ${t(core.action_id ?? a.action_id)} ${t(core.action_version ?? '')}  (${t(core.action_digest ?? '')})`,
    `principal     ${t(a.principal)}  session ${t(a.session_id)}`,
    `created       ${t(a.created_at)}  expires ${t(a.expires_at)}`,
    `plan_hash     ${t(a.plan_hash)}`,
  ];
  if (a.decided_by) lines.push(`decided       ${t(a.decided_by)} at ${t(a.decided_at)}${a.reason ? `: ${t(a.reason)}` : ''}`);
  let canonical: string;
  let hash: string;
  try {
    canonical = canonicalize(plan.request);
    hash = canonicalHash(plan.request);
  } catch (e) {
    canonical = `(cannot be canonicalized: ${(e as Error).message})`;
    hash = '';
  }
  const matches = hash === core.request_hash ? 'matches the plan\'s request_hash' : `DIFFERS from the plan's request_hash ${t(core.request_hash)}`;
  lines.push(
    '',
    'Characters a terminal would act on or hide are shown as \\u{hex}.',
    '',
    'request:',
    displayJson(plan.request).replace(/^/gm, '  '),
    '',
    `canonical request (RFC 8785; ${t(hash)}, ${matches}):`,
    `  ${displayLines(canonical)}`,
    '',
    'plan:',
    displayJson(a.plan).replace(/^/gm, '  '),
  );
  return lines.join('\n');
}

/** Opens the shared gate, runs fn, closes; gate errors become one-line launcher errors. */
export async function withGate<T>(o: Out, fn: (g: Awaited<ReturnType<typeof openSharedGate>>, s: GateSetup) => Promise<T> | T): Promise<T> {
  const s = gateSetup(o.config);
  const g = await openSharedGate(s, 'cli');
  try {
    return await fn(g, s);
  } catch (e) {
    if (e instanceof GateError) throw new LaunchError(`${e.code}: ${e.message}`, 1);
    throw e;
  } finally {
    g.close();
  }
}

function pingGate(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/healthz', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export const common = (c: Command) => c.option('--config <file>', 'latchgate.toml').option('--json', 'machine-readable output');

export function statusCommand(): Command {
  return common(new Command('status').summary('gate configuration, state and health')).action(async (o: Out) => {
    await withGate(o, async (g, s) => {
      const running = await pingGate(s.clientSocket);
      const { checkChainedState } = await import('../gate/state-check.js');
      const report = (await import('../ledger/verify.js')).verifyLedger(g.db, g.ctx.keys, g.db.name, checkChainedState, { inFlight: (i) => g.ctx.instances.isRunning(i) });
      const v = {
        config_file: s.config.file,
        state_dir: s.stateDir,
        client_socket: s.clientSocket,
        admin_socket: s.adminSocket,
        gate_running: running,
        actions: g.ctx.registry.list().length,
        policy_engine: g.ctx.policy.kind,
        revocation_epoch: report.state?.values['gate_state.revocation_epoch']?.table ?? null,
        pending_approvals: g.ctx.approvals.list('pending', 1000).length,
        ledger: { events: report.total_events, intact: report.intact, intents_without_receipts: report.intents_without_receipts.length },
        budgets: budgetReport(g.ctx.budgets),
        state_mismatches: report.state?.mismatches.map((m) => m.message) ?? [],
      };
      print(o, v, () =>
        [
          `config:     ${v.config_file ?? '(built-in defaults)'}`,
          `state:      ${v.state_dir}`,
          `gate:       ${running ? 'running' : 'not running'} (${v.client_socket})`,
          `actions:    ${v.actions}, policy engine ${v.policy_engine}, revocation epoch ${v.revocation_epoch}`,
          `approvals:  ${v.pending_approvals} pending`,
          `ledger:     ${v.ledger.events} events, ${v.ledger.intact ? 'intact' : 'BROKEN (run latchgate verify)'}${v.ledger.intents_without_receipts ? `, ${v.ledger.intents_without_receipts} intents without receipts` : ''}`,
          ...budgetLines(v.budgets),
          ...v.state_mismatches.map((m) => `TAMPERED:   ${m}`),
        ].join('\n'),
      );
    });
  });
}

export function actionsCommand(): Command {
  return common(new Command('actions').summary('list registered actions, or show one').argument('[id]')).action(async (id: string | undefined, o: Out) => {
    await withGate(o, (g) => {
      if (id) {
        const a = g.gate.getAction(id);
        print(o, a, () => actionLines(a as Parameters<typeof actionLines>[0]).join('\n'));
      } else {
        const list = g.gate.listActions();
        print(o, list, () => (list.length === 0 ? 'no actions' : textTable(['ACTION_ID', 'VERSION', 'RISK_LEVEL', 'DECLARED_SIDE_EFFECTS'], list.map((a) => [displayText(a.action_id), displayText(a.version), displayText(a.risk_level), (a.declared_side_effects as string[]).map(displayText).join(', ')]))));
      }
    });
  });
}

/**
 * --event-type: a name from the event catalogue, or the start of exactly one
 * (lease_i is lease_issued). Anything else is refused with the nearest names,
 * before the ledger is opened.
 */
export function resolveEventType(given: string): EventType {
  if (isEventType(given)) return given;
  const starts = EVENT_TYPES.filter((n) => n.startsWith(given));
  if (starts.length === 1) return starts[0]!;
  if (starts.length > 1) throw new InvalidArgumentError(`it is the start of ${starts.join(', ')}: give more of the name`);
  const near = closest(given, EVENT_TYPES);
  throw new InvalidArgumentError(`no event type is called that${near.length ? `; nearest: ${near.join(', ')}` : ''}`);
}

/** The event types with their meaning, for `latchgate audit --help`. */
function eventTypesHelp(): string {
  const w = Math.max(...EVENT_TYPES.map((n) => n.length));
  const groups = Object.entries(EVENT_TYPE_GROUPS).map(([name, types]) => `${name} selects ${(types ?? []).join(', ')}`);
  return `\nEvent types (--event-type takes a name, or the start of exactly one; ${groups.join('; ')}; docs/EVENTS.md has their fields):\n${EVENT_TYPES.map((n) => `  ${n.padEnd(w)}  ${EVENT_CATALOGUE[n].meaning}`).join('\n')}\n`;
}

export function auditCommand(): Command {
  return new Command('audit')
    .summary('query the ledger')
    .option('--config <file>', 'latchgate.toml')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'jsonl', 'csv']).default('table'))
    .option('--json', 'same as --format json')
    .option('-l, --limit <n>', 'newest N events', '20')
    .option('--action <id>', 'only this action')
    .option('--principal <name>', 'only this principal')
    .addOption(new Option('--decision <d>', 'only this decision').choices(['allow', 'allow_unverified', 'deny', 'pending_approval', 'error']))
    .option('--after <time>', 'ISO 8601')
    .option('--before <time>', 'ISO 8601')
    .option('--trace-id <id>', 'one event')
    .option('--session-id <id>', 'one lease session')
    .addOption(new Option('--event-type <type>', 'only this event type (listed below; a unique start of a name is enough; egress: every exit of the box)').argParser(resolveEventType))
    .addHelpText('after', eventTypesHelp)
    .action(async (o: Out & Record<string, string | undefined>) => {
      await withGate(o, async (g) => {
        const events = g.gate.admin.auditEvents({
          action: o.action, principal: o.principal, decision: o.decision, after: o.after, before: o.before,
          trace_id: o.traceId, session_id: o.sessionId, event_type: o.eventType, limit: o.limit,
        });
        const format = (o.json ? 'json' : o.format) as AuditFormat;
        const { formatEvents } = await import('../ledger/format.js');
        // Events carry agents' text: JSON stays exact but terminal-safe, the table is escaped; CSV is data for a program and stays as it is.
        const raw = formatEvents(events as never, format);
        const text = format === 'json' || format === 'jsonl' ? safeJsonText(raw) : format === 'table' ? displayLines(raw) : raw;
        process.stdout.write(text.endsWith('\n') || text === '' ? text : text + '\n');
      });
    });
}

export function verifyCommand(): Command {
  return common(new Command('verify').summary('verify the ledger: hash chain, receipts, signed checkpoints, intents without receipts, the state kept outside the chain'))
    .description(
      'Exit 0 when the ledger is intact, 2 when it is not (the first bad event is named; each receipt that fails its signature, that no chained event names, or that an event names but is missing or differs; each intent without a receipt that no event accounts for and no running gate holds; each table whose value differs from what the chain recorded: the revocation epoch, the policy data; and the first checkpoint problem: a checkpoint not signed by the checkpoint key history, a fork, events deleted or rewritten below a checkpoint, a checkpoint deleted from the table but kept in checkpoints.log). ' +
        'With --checkpoint FILE (a signed checkpoint kept elsewhere), also proves that the ledger extends it. Writes nothing: works on a read-only or archived state directory. From 20 000 events on, the work on each event runs in worker threads, one per core up to 4 (LATCHGATE_VERIFY_THREADS=N sets the number; 0 verifies in one thread).',
    )
    .option('--checkpoint <file>', 'a signed checkpoint of this ledger kept elsewhere (`latchgate checkpoint` output, a file of a directory sink): the ledger must extend it')
    .option('--trusted-key <vkey>', 'the verifier key to check --checkpoint with (`latchgate checkpoint --print-key`, kept elsewhere); default: the checkpoint keys of the state directory, which its writers could have replaced')
    .action(async (o: Out & { checkpoint?: string; trustedKey?: string }) => {
      if (o.trustedKey !== undefined && o.checkpoint === undefined) throw new LaunchError('--trusted-key checks the checkpoint given with --checkpoint FILE; give that too', 1);
      // Not through the gate: opening it migrates the database and creates files.
      const stateDir = gateSetup(o.config).stateDir;
      const files = stateFiles(stateDir);
      const [{ verifyLedgerFile }, { formatVerifyReport }, { LedgerError }, { KeyStore }, { KeyStoreError }, { checkChainedState }, { readCheckpointLog }, { CHECKPOINT_LOG }, { intentInFlight }] = await Promise.all([
        import('../ledger/verify.js'), import('../ledger/format.js'), import('../ledger/ledger.js'), import('../keys/store.js'), import('../keys/ed25519.js'), import('../gate/state-check.js'),
        import('../ledger/tree-verify.js'), import('../ledger/checkpoint-sinks.js'), import('../gate/instances.js'),
      ]);
      const external = o.checkpoint === undefined ? undefined : await readExternalCheckpoint(o.checkpoint, o.trustedKey);
      let r;
      try {
        // The log before the database's snapshot: every note in it is then in the snapshot's table too.
        const log = readCheckpointLog(join(stateDir, CHECKPOINT_LOG));
        r = verifyLedgerFile(files.ledger, new KeyStore(files.keys), checkChainedState, { inFlight: (i) => intentInFlight(stateDir, i), checkpoints: { log, ...(external ? { external } : {}) } });
      } catch (e) {
        if (e instanceof LedgerError || e instanceof KeyStoreError) throw new LaunchError(e.message, 1);
        throw e;
      }
      print(o, r, () => formatVerifyReport(r));
      process.exitCode = r.intact ? 0 : 2;
    });
}

/** --checkpoint FILE and --trusted-key VKEY, refused (exit 1) when they are not a signed checkpoint and a verifier key. */
async function readExternalCheckpoint(file: string, trustedKey: string | undefined): Promise<{ file: string; note: string; trustedKey?: string }> {
  const [{ noteVerifier }, { parseNote }, { parseCheckpoint }] = await Promise.all([import('../crypto/signed-note.js'), import('../verify/note.js'), import('../verify/checkpoint.js')]);
  let note: string;
  try {
    note = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LaunchError(`--checkpoint ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give the file of a signed checkpoint`, 1);
  }
  try {
    parseCheckpoint(parseNote(note).text);
  } catch (e) {
    throw new LaunchError(`--checkpoint ${file} is not a signed checkpoint (${(e as Error).message}); give a file \`latchgate checkpoint\` printed or a directory sink wrote`, 1);
  }
  if (trustedKey === undefined) return { file, note };
  try {
    noteVerifier(trustedKey);
  } catch (e) {
    throw new LaunchError(`--trusted-key is not a verifier key (${(e as Error).message}); give the one \`latchgate checkpoint --print-key\` printed`, 1);
  }
  return { file, note, trustedKey };
}

export function revokeCommand(): Command {
  return common(new Command('revoke').summary('revoke every lease and grant issued so far, and the pending approvals (advances the revocation epoch)'))
    .action(async (o: Out) => {
      await withGate(o, (g, s) => {
        const r = g.gate.admin.revokeAll(localOperator(s));
        print(o, r, () => {
          const n = (r.approvals_revoked as string[]).length;
          return `revoked: every lease and grant before epoch ${r.epoch} is refused from now on${n ? `; ${n} pending approval${n === 1 ? '' : 's'} revoked` : ''}`;
        });
      });
    });
}

export function reloadCommand(): Command {
  return common(
    new Command('reload').summary("read the SOPS secrets file again now: this command checks it, and every running gate process on the state directory drops its cached values (they are read again at the next use)"),
  ).action(async (o: Out) => {
    await withGate(o, async (g, s) => {
      const r = await g.gate.admin.secretsReload(localOperator(s));
      print(o, r, () => (r.file ? `reloaded: ${r.file} holds ${r.secrets} secret${r.secrets === 1 ? '' : 's'}; running gates read it again at the next use` : 'no SOPS secrets file is configured ([secrets] sops_file) or present; the gate reads LATCHGATE_SECRET_* from its environment'));
    });
  });
}

export function approvalsCommand(): Command {
  const c = new Command('approvals').summary('list, show, approve or deny pending approvals');
  c.addCommand(common(new Command('list').summary('pending approvals (newest first)')).option('--all', 'include decided ones').option('-l, --limit <n>', 'at most N', '50').action(async (o: Out & { all?: boolean; limit: string }) => {
    await withGate(o, (g) => {
      const list = g.gate.admin.approvals({ status: o.all ? 'all' : 'pending', limit: Number(o.limit) });
      print(o, list, () => (list.length === 0 ? 'no approvals' : textTable(['APPROVAL_ID', 'STATUS', 'ACTION_ID', 'PRINCIPAL', 'EXPIRES_AT'], list.map((a) => [a.approval_id, a.status, a.action_id, a.principal, a.expires_at].map(displayText)))));
    });
  }));
  c.addCommand(common(new Command('show').summary('one approval with its plan')).argument('<id>').action(async (id: string, o: Out) => {
    await withGate(o, (g) => {
      const a = g.gate.admin.approval(id);
      print(o, a, () => renderApproval(a));
    });
  }));
  c.addCommand(common(new Command('approve').summary('approve: the plan runs now, once')).argument('<id>').action(async (id: string, o: Out) => {
    await withGate(o, async (g, s) => {
      const r = await g.gate.admin.approve(localOperator(s), id, {});
      print(o, r, () => `approved ${displayText(id)}: executed, HTTP ${displayText(r.http_status)}${(r.result as { receipt_id?: string })?.receipt_id ? `, receipt ${displayText((r.result as { receipt_id: string }).receipt_id)}` : ''}`);
    });
  }));
  c.addCommand(common(new Command('deny').summary('deny, with a reason the agent sees')).argument('<id>').option('-r, --reason <text>').action(async (id: string, o: Out & { reason?: string }) => {
    await withGate(o, (g, s) => {
      const r = g.gate.admin.deny(localOperator(s), id, { reason: o.reason });
      print(o, r, () => `denied ${displayText(id)}${o.reason ? `: ${displayText(o.reason)}` : ''}`);
    });
  }));
  return c;
}

export function policyCommand(): Command {
  const c = new Command('policy').summary('grant, revoke and show what principals may do; replay and test policies');
  const csv = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
  c.addCommand(common(new Command('grant').summary('allow a principal some actions')).argument('<principal>', 'principal, or * for everyone').argument('<actions>', 'comma-separated action ids').option('--sinks <list>', 'comma-separated sinks (default: what the actions declare)').action(async (principal: string, actions: string, o: Out & { sinks?: string }) => {
    await withGate(o, (g, s) => {
      const ids = csv(actions);
      for (const id of ids) if (!g.ctx.registry.get(id)) throw new LaunchError(`no action ${id}; see latchgate actions`, 1);
      const sinks = o.sinks ? csv(o.sinks) : [...new Set(ids.flatMap((id) => g.ctx.registry.get(id)!.manifest.declared_side_effects))];
      const r = g.gate.admin.policyGrant(localOperator(s), { principal, actions: ids, sinks });
      print(o, r, () => `granted ${principal}: ${ids.join(', ')} (sinks ${sinks.join(', ') || 'none'})`);
    });
  }));
  c.addCommand(common(new Command('revoke').summary('take actions away from a principal')).argument('<principal>').argument('<actions>', 'comma-separated action ids').action(async (principal: string, actions: string, o: Out) => {
    await withGate(o, (g, s) => {
      const r = g.gate.admin.policyRevoke(localOperator(s), { principal, actions: csv(actions) });
      print(o, r, () => `revoked from ${principal}: ${csv(actions).join(', ')}`);
    });
  }));
  c.addCommand(common(new Command('accept').summary('record the policy data as it is now (after a state_tampered report and a look at `policy show`)')).action(async (o: Out) => {
    await withGate(o, (g, s) => {
      const r = g.gate.admin.policyAccept(localOperator(s));
      print(o, r, () => `accepted the policy data as it is now (${String(r.policy_digest)}; the chain held ${String(r.recorded_digest ?? 'none')})`);
    });
  }));
  c.addCommand(common(new Command('show').summary('the policy data, or one principal\'s view')).argument('[principal]').action(async (principal: string | undefined, o: Out) => {
    await withGate(o, (g) => {
      const r = g.gate.admin.policyShow(principal);
      const { budgets, ...policy } = r as { budgets: BudgetReport };
      print(o, r, () => [JSON.stringify(policy, null, 2), ...budgetLines(budgets)].join('\n'));
    });
  }));
  c.addCommand(common(new Command('list').summary('every principal with grants')).action(async (o: Out) => {
    await withGate(o, (g) => {
      const r = g.ctx.policyStore.list();
      print(o, r, () => (r.length === 0 ? 'no grants (everything is denied)' : textTable(['PRINCIPAL', 'ALLOWED_ACTIONS', 'ALLOWED_SINKS', 'INHERITS_WILDCARD'], r.map((e) => [displayText(e.principal), e.allowed_actions.map(displayText).join(', '), e.allowed_sinks.map(displayText).join(', '), e.inherits_wildcard ? 'yes' : 'no']))));
    });
  }));
  c.addCommand(policyReplayCommand());
  c.addCommand(policyTestCommand());
  return c;
}

/** `latchgate keys rotate` exits with this when a running gate process did not take the new key in time. */
export const EXIT_ROTATION_NOT_PICKED_UP = 3;

function seconds(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds (0 or more)');
  return n;
}

/** The rotation report for a terminal: the kids, then one line per running gate process. */
function renderRotation(r: RotationReport): string {
  const lines = [`rotated the ${r.kind} key: new kid ${r.kid}, previous kid ${r.previous_kid} (old signatures still verify)`, `running gate processes: ${r.processes.length}`];
  for (const p of r.processes) {
    const what = p.picked_up ? 'picked up' : 'NOT picked up';
    lines.push(`  pid ${p.pid ?? '?'}  ${(p.role ?? '?').padEnd(7)}  ${what}${p.self ? ' (this command)' : ''}${p.note ? `: ${p.note}` : ''}`);
  }
  return lines.join('\n');
}

/** Loud, on stderr: which processes still sign with the retired key, and the fix. */
function warnLagging(r: RotationReport): void {
  const lagging = r.processes.filter((p) => !p.picked_up);
  const list = lagging.map((p) => `  pid ${p.pid ?? '?'} (${p.role ?? 'unknown role'}, instance ${p.instance_id}): ${p.note ?? ''}`).join('\n');
  process.stderr.write(
    displayLines(`latchgate: WARNING: ${lagging.length} running gate process(es) did not pick up the new ${r.kind} key ${r.kid}:\n${list}\n` +
      `What they sign from now on is refused by verification (the previous key ${r.previous_kid} signs nothing dated after its retirement). ` +
      `Fix: restart those processes (\`latchgate up\`, or the \`latchgate sandbox\` box), or if one was only paused, check again with a longer --wait.`) + '\n',
  );
}

export function keysCommand(): Command {
  const c = new Command('keys').summary('signing keys');
  c.addCommand(
    common(new Command('rotate').summary('a new signing key; old signatures keep verifying; reports which running gate processes took it'))
      .addOption(new Option('--kind <kind>', 'which key').choices(['receipt', 'grant', 'lease', 'checkpoint']).default('receipt'))
      .addOption(new Option('--wait <seconds>', `how long to wait for every running gate process to take the new key (at most ${ROTATION_WAIT_MAX_SECONDS})`).argParser(seconds).default(ROTATION_WAIT_DEFAULT_SECONDS))
      .action(async (o: Out & { kind: string; wait: number }) => {
        await withGate(o, async (g, s) => {
          const r = (await g.gate.admin.keysRotate(localOperator(s), { kind: o.kind, wait_seconds: o.wait })) as unknown as RotationReport;
          print(o, r, () => renderRotation(r));
          if (!r.all_picked_up) {
            warnLagging(r);
            process.exitCode = EXIT_ROTATION_NOT_PICKED_UP;
          }
        });
      }),
  );
  return c;
}
