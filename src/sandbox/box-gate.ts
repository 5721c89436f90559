// The gate as the box sees it: a Unix socket per box, bind-mounted at
// /run/latchgate/gate.sock, whose every caller is the box's principal (fixed
// here, never claimed by the client). The gate itself opens on the first
// connection, so boxes that never call it start as fast as without it.
import net from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { GateSetup } from '../gate/setup.js';
import type { OpenedGate } from '../gate/factory.js';
import type { AuditEventInput } from '../core/audit-event.js';
import { DenialCoalescer } from '../ledger/coalesce.js';
import { denialKind } from '../ledger/denial-kinds.js';
import type { Ledger } from '../ledger/ledger.js';
import { BoxDir, listenInBoxDir } from './box-dir.js';

export class BoxGate {
  readonly dir: string;
  readonly socketPath: string;
  private readonly boxDir: BoxDir;
  private readonly server: net.Server;
  private opening: Promise<{ app: FastifyInstance; opened: OpenedGate }> | undefined;

  /** Set once the plan is known: every event then says the box ran degraded. */
  sandboxDegraded = false;
  private readonly pending: AuditEventInput[] = [];
  private ledger: Ledger | undefined;
  private flushing: Promise<void> | undefined;
  /** A box hammering its exits with refusals gets counted summaries, not one event per refusal. */
  private readonly denials = new DenialCoalescer({ write: (e) => this.enqueue(e), classify: denialKind });

  constructor(
    private readonly setup: GateSetup,
    readonly principal: string,
    agent: { uid: number; gid: number },
  ) {
    // The launcher's, searchable by the agent's group only (box-dir.ts).
    this.boxDir = BoxDir.create(agent.gid);
    this.dir = this.boxDir.path;
    this.socketPath = join(this.dir, 'gate.sock');
    this.server = net.createServer({ pauseOnConnect: true }, (sock) => {
      this.open().then(
        ({ app }) => {
          app.server.emit('connection', sock);
          sock.resume();
        },
        (e) => {
          process.stderr.write(`latchgate: the gate could not start for the box: ${(e as Error).message}\n`);
          sock.destroy();
        },
      );
    });
  }

  /** Binds gate.sock, connectable by the box's user (mode and group set by the bind itself). */
  async listen(): Promise<void> {
    await listenInBoxDir(
      this.socketPath,
      () =>
        new Promise<void>((resolve, reject) => {
          this.server.once('error', reject);
          this.server.listen(this.socketPath, () => resolve());
        }),
    );
  }

  /** Opens the gate on the shared state (once). */
  open(): Promise<{ app: FastifyInstance; opened: OpenedGate }> {
    this.opening ??= (async () => {
      const [{ openGate }, { buildGateApp }, { boxIdentity }] = await Promise.all([import('../gate/factory.js'), import('../gate/app.js'), import('../gate/transport.js')]);
      const opened = await openGate({ stateDir: this.setup.stateDir, config: this.setup.gate, sandboxDegraded: this.sandboxDegraded });
      const app = buildGateApp({ service: opened.gate, role: 'client', identify: boxIdentity(this.principal, ['tools:call']) });
      await app.ready();
      return { app, opened };
    })();
    return this.opening;
  }

  /**
   * Appends an event from the box's exits (egress decisions) to the ledger.
   * The gate opens on first use, so events queue until it is open; a failure
   * to record is said loudly on stderr (the box's own run goes on).
   * Repeated refusals of one kind are counted (src/ledger/coalesce.ts).
   */
  record(e: AuditEventInput): void {
    this.denials.record(e, this.principal);
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
      // The ledger alone: recording egress decisions does not need the whole gate.
      if (!this.ledger) {
        const { Ledger } = await import('../ledger/ledger.js');
        this.ledger = Ledger.open(join(this.setup.stateDir, 'ledger.sqlite3'));
      }
      while (this.pending.length > 0) this.ledger.append({ ...this.pending.shift()!, ...(this.sandboxDegraded ? { sandbox_degraded: true } : {}) });
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
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.opening) {
      const { app, opened } = await this.opening.catch(() => ({ app: undefined, opened: undefined }));
      await app?.close();
      opened?.close();
    }
    this.boxDir.remove();
  }
}
