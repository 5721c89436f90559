// The gate as the box sees it: a Unix socket per box, bind-mounted at
// /run/latchgate/gate.sock, whose every caller is the box's principal (fixed
// here, never claimed by the client). The gate itself opens on the first
// connection, so boxes that never call it start as fast as without it.
import net from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { GateSetup } from '../gate/setup.js';
import { ownPaths } from '../gate/own-paths.js';
import type { OpenedGate } from '../gate/factory.js';
import { BoxDir, listenInBoxDir } from './box-dir.js';

export class BoxGate {
  readonly dir: string;
  readonly socketPath: string;
  private readonly boxDir: BoxDir;
  private readonly server: net.Server;
  private opening: Promise<{ app: FastifyInstance; opened: OpenedGate }> | undefined;

  /** Set once the plan is known: every event of the gate then says the box ran degraded. */
  sandboxDegraded = false;

  constructor(
    private readonly setup: GateSetup,
    private readonly principal: string,
    agent: { uid: number; gid: number },
    /** The box's workspace: the file root of its fs actions unless [providers.fs] sets one. */
    private readonly workspace?: string,
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

  /**
   * Opens the gate now, in the background, for a box whose agent will call
   * it at once (its MCP server lists the tools as it starts); a failure is
   * reported when a connection comes.
   */
  prewarm(): void {
    this.open().catch(() => undefined);
  }

  /** Opens the gate on the shared state (once). */
  private open(): Promise<{ app: FastifyInstance; opened: OpenedGate }> {
    this.opening ??= (async () => {
      const [{ openGate }, { buildGateApp }, { boxIdentity }, { timeUnlistenedServer }] = await Promise.all([import('../gate/factory.js'), import('../gate/app.js'), import('../gate/transport.js'), import('../gate/http-guards.js')]);
      const opened = await openGate({ stateDir: this.setup.stateDir, config: this.setup.gate, sandboxDegraded: this.sandboxDegraded, role: 'sandbox', ownPaths: ownPaths(this.setup), ...(this.setup.config.secrets ? { secrets: this.setup.config.secrets } : {}), ...(this.workspace ? { fsRoot: this.workspace } : {}) });
      const app = buildGateApp({ service: opened.gate, role: 'client', identify: boxIdentity(this.principal, ['tools:call']), peer: () => `box:${this.principal}` });
      await app.ready();
      timeUnlistenedServer(app); // connections come from this.server: the timeouts still apply
      return { app, opened };
    })();
    return this.opening;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.opening) {
      const { app, opened } = await this.opening.catch(() => ({ app: undefined, opened: undefined }));
      await app?.close();
      await opened?.finalCheckpoint();
      opened?.close();
    }
    this.boxDir.remove();
  }
}
