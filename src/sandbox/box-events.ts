// The box's events in the ledger: its exits' decisions, the weaker modes it
// runs in, what it left that the host would run and what became of its
// state files. Written through the ledger alone, opened on first use:
// recording them does not need the whole gate.
import { join } from 'node:path';
import type { AuditEventInput } from '../core/audit-event.js';
import { DenialCoalescer } from '../ledger/coalesce.js';
import { denialKind } from '../ledger/denial-kinds.js';
import type { Ledger } from '../ledger/ledger.js';
import type { GitFinding } from './git-check.js';
import type { StateMergeReport } from './state-files.js';

export class BoxEvents {
  private readonly pending: AuditEventInput[] = [];
  private ledger: Ledger | undefined;
  private flushing: Promise<void> | undefined;
  /** A box hammering its exits with refusals gets counted summaries, not one event per refusal. */
  private readonly denials = new DenialCoalescer({ write: (e) => this.enqueue(e), classify: denialKind });

  /** degraded: the box runs in a weaker mode, which every event then says. */
  constructor(
    private readonly stateDir: string,
    readonly principal: string,
    private readonly degraded: boolean,
  ) {}

  /**
   * Appends an event from the box's exits (egress decisions) to the ledger,
   * as the box's principal. Events queue until the ledger is open; a failure
   * to record is said loudly on stderr (the box's own run goes on). Repeated
   * refusals of one kind are counted (src/ledger/coalesce.ts).
   */
  exit(e: AuditEventInput): void {
    this.record({ ...e, subject: { principal: this.principal } });
  }

  /** The weaker modes the box runs in, written before it starts: a failure to record them stops the launch. */
  async sandboxDegraded(degraded: string[], workspace: string): Promise<void> {
    (await this.open()).append(this.marked({ event_type: 'sandbox_degraded', decision: 'allow', subject: { principal: this.principal }, details: { degraded, workspace } }));
  }

  /** Something the box left that the host would run, and what was done about it. */
  hostExec(f: GitFinding): void {
    this.record({
      event_type: 'sandbox_host_exec',
      decision: f.action === 'kept' || f.action === 'reported' ? 'allow' : 'deny',
      subject: { principal: this.principal },
      details: { kind: f.kind, path: f.path, action: f.action, ...(f.moved ? { moved_to: f.moved.to } : {}), ...(f.gitlinks ? { gitlinks: f.gitlinks } : {}) },
    });
  }

  /** What became of a state file's box copy (key paths only, never values). */
  stateFile(r: StateMergeReport): void {
    this.record({
      event_type: 'state_file_merge',
      decision: r.outcome === 'kept-aside' || r.dropped.length > 0 ? 'deny' : 'allow',
      subject: { principal: this.principal },
      details: { path: r.path, outcome: r.outcome, dropped: r.dropped, ...(r.keptAt ? { kept_at: r.keptAt } : {}), ...(r.reason ? { reason: r.reason } : {}) },
    });
  }

  private record(e: AuditEventInput): void {
    this.denials.record(e, this.principal);
  }

  private marked(e: AuditEventInput): AuditEventInput {
    return { ...e, ...(this.degraded ? { sandbox_degraded: true } : {}) };
  }

  private async open(): Promise<Ledger> {
    if (!this.ledger) {
      const { Ledger } = await import('../ledger/ledger.js');
      this.ledger ??= Ledger.open(join(this.stateDir, 'ledger.sqlite3'));
    }
    return this.ledger;
  }

  private enqueue(e: AuditEventInput): void {
    this.pending.push(e);
    if (this.flushing) return; // the running flush drains the queue
    const p = this.flush();
    this.flushing = p;
    void p.finally(() => {
      if (this.flushing === p) this.flushing = undefined;
    });
  }

  private async flush(): Promise<void> {
    try {
      const ledger = await this.open();
      while (this.pending.length > 0) ledger.append(this.marked(this.pending.shift()!));
    } catch (e) {
      process.stderr.write(`latchgate: cannot record ${this.pending.length} egress event(s) in the ledger: ${(e as Error).message}\n`);
      this.pending.length = 0;
    }
  }

  async close(): Promise<void> {
    this.denials.close(); // the counted refusals join the queue drained below
    while (this.flushing) await this.flushing;
    if (this.pending.length > 0) await this.flush();
    this.ledger?.db.close();
  }
}
