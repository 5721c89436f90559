// The gate's protected actions as an MCP server: tools/list offers the
// actions the principal may call (src/mcp/catalogue.ts), tools/call runs one
// through the SDK (src/sdk/), and a change of the set (a policy grant or
// revoke, an action added) is announced with notifications/tools/list_changed:
// the server re-lists every few seconds while a client is connected, and after
// a call the gate refused as not granted. A call that needs an approval
// answers at once with the approval id, or waits up to --wait-approval
// seconds, with progress notifications, for the gate's run of it. Nothing but
// the protocol goes to stdout.
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type CallToolRequest, type CallToolResult, type ServerNotification, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { LatchGateApprovalRequired, LatchGateClient, LatchGateConnectionError, LatchGateError, type LatchGateClientOptions } from '../sdk/index.js';
import { canonicalize } from '../crypto/jcs.js';
import { tuneJitForServing } from '../runtime/jit-flags.js';
import { Catalogue, type ToolSet } from './catalogue.js';
import { approveCommand, errorResult, pendingResult, successResult } from './results.js';

export interface McpServeOptions {
  /** Where the gate is and who calls it (the SDK's defaults: LATCHGATE_URL, ...). */
  client: LatchGateClientOptions;
  /** Seconds a call that needs an approval waits for it (0: answer at once with the approval id). */
  waitApprovalSeconds: number;
  /** Seconds between re-listings while a client is connected. */
  refreshSeconds: number;
  /** How long a listing may take before tools/list fails (ms). */
  listTimeoutMs?: number;
  /** The server version MCP clients see. */
  version: string;
  /** Diagnostics (stderr by default: stdout is the protocol's). */
  log?: (line: string) => void;
}

const LOOSE_CALL = CallToolRequestSchema.omit({ params: true }).passthrough();

/** Codes after which the set of tools may well have changed. */
const POLICY_CODES = new Set(['policy_denied', 'action_not_found', 'provider_untrusted', 'scope_not_permitted']);
/** A call's identity for its retries: tool and canonical arguments (none for arguments JCS refuses; the gate refuses them too). */
function heldKey(name: string, args: Record<string, unknown> | undefined): string | undefined {
  try {
    return `${name}\0${canonicalize(args ?? {})}`;
  } catch {
    return undefined;
  }
}

/** Held calls remembered for their retries (the oldest is forgotten first). */
const MAX_HELD = 256;

/** How often progress is reported while a call waits for its approval, and the approval polled. */
const PROGRESS_MS = 1000;
const APPROVAL_POLL_MS = 500;

export class GateMcpServer {
  readonly server: Server;
  readonly gate: LatchGateClient;
  private readonly catalogue: Catalogue;
  private readonly log: (line: string) => void;
  /** The fingerprint of the set the client was last given, and of the set the last listing found. */
  private listed: string | undefined;
  private seen: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private failing = false;
  /** Calls this server was told need an approval, by tool and arguments: a retry answers from that approval instead of asking for another. */
  private readonly held = new Map<string, LatchGateApprovalRequired>();

  constructor(private readonly o: McpServeOptions) {
    this.log = o.log ?? ((line) => process.stderr.write(`latchgate mcp: ${line}\n`));
    this.gate = new LatchGateClient(o.client);
    this.catalogue = new Catalogue(this.gate, o.listTimeoutMs ?? 10_000, this.log);
    this.server = new Server(
      { name: 'latchgate', title: 'latchgate gate', version: o.version },
      {
        capabilities: { tools: { listChanged: true } },
        instructions: 'Each tool is a protected action of the latchgate gate: the gate checks policy and budgets, runs it, verifies the effect and signs a receipt. A call may need an operator\'s approval; the result then names the approval id.',
      },
    );
    this.server.setRequestHandler(ListToolsRequestSchema, async () => {
      const set = await this.list();
      this.listed = this.seen = set.fingerprint;
      return { tools: set.tools };
    });
    // Registered with the params unchecked, so that the server's own check of
    // tools/call (before this handler runs) answers misuse, such as arguments
    // that are not an object, with Invalid params rather than an internal error.
    // The server's check has parsed this very request by CallToolRequestSchema before the handler runs: its params are read as they are.
    this.server.setRequestHandler(LOOSE_CALL, (req, extra) => {
      const { params } = req as unknown as CallToolRequest;
      return this.call(params.name, params.arguments, extra);
    });
    this.server.oninitialized = () => this.schedule();
  }

  /**
   * Lists the gate's actions once before the first answer (bounded by the
   * list timeout; a failure is answered later, at tools/list): clients that
   * list tools right after initialize, and start their first turn soon
   * after, then see them even while the gate is still opening.
   */
  async warm(): Promise<void> {
    await this.catalogue.refresh().catch(() => undefined);
  }

  /** Stops re-listing and closes the gate client's connections (the MCP transport is the caller's). */
  dispose(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.gate.close();
  }

  private async list(): Promise<ToolSet> {
    try {
      return await this.catalogue.refresh();
    } catch (e) {
      const g = asGateError(e, this.gate);
      throw new McpError(ErrorCode.InternalError, `${g.code}: ${g.message}${g.code === 'gate_unreachable' ? ' (start it with `latchgate up`, or pass --socket/--url to `latchgate mcp serve`)' : ''}`, { code: g.code });
    }
  }

  /** Re-lists every refreshSeconds while connected; announces a changed set. */
  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.recheck().finally(() => this.schedule()), this.o.refreshSeconds * 1000);
    this.timer.unref();
  }

  private async recheck(): Promise<void> {
    try {
      const set = await this.catalogue.refresh();
      if (this.failing) this.log('the gate answers again');
      this.failing = false;
      const before = this.seen;
      this.seen = set.fingerprint;
      // Announced once per change, and only when the client holds another set than this one.
      if (this.listed !== undefined && set.fingerprint !== before && set.fingerprint !== this.listed) await this.server.sendToolListChanged();
    } catch (e) {
      if (!this.failing) this.log(`cannot list the gate's actions: ${(e as Error).message}`);
      this.failing = true;
    }
  }

  private async call(name: string, args: Record<string, unknown> | undefined, extra: CallExtra): Promise<CallToolResult> {
    let set = this.catalogue.current;
    if (!set?.actions.has(name)) {
      try {
        set = await this.catalogue.refresh();
      } catch (e) {
        return errorResult(asGateError(e, this.gate));
      }
    }
    const actionId = set.actions.get(name);
    if (actionId === undefined) throw new McpError(ErrorCode.InvalidParams, `unknown tool ${JSON.stringify(name)}: it is not an action this principal may call (tools/list names them)`);
    const tool = set.byName.get(name);
    // The call's identity (its canonical arguments) only matters once a call has been held.
    const key = this.held.size > 0 ? heldKey(name, args) : undefined;
    const held = key === undefined ? undefined : this.held.get(key);
    if (held) return this.retryHeld(key!, held, tool, extra);
    try {
      return successResult(await this.gate.execute(actionId, args ?? {}, { signal: extra.signal }), tool);
    } catch (e) {
      if (e instanceof LatchGateApprovalRequired) {
        const k = key ?? heldKey(name, args);
        return k === undefined ? this.awaitApproval(e, tool, extra) : this.holdAndWait(k, e, tool, extra);
      }
      if (extra.signal.aborted) throw e; // cancelled: the client expects no answer
      if (!(e instanceof LatchGateError)) throw e;
      if (POLICY_CODES.has(e.code)) void this.recheck();
      return errorResult(e);
    }
  }

  /** Remembers a held call while its answer is still "pending" (a cancelled wait leaves the approval standing). */
  private async holdAndWait(key: string, e: LatchGateApprovalRequired, tool: Tool | undefined, extra: CallExtra): Promise<CallToolResult> {
    this.held.delete(key);
    this.held.set(key, e);
    if (this.held.size > MAX_HELD) this.held.delete(this.held.keys().next().value!);
    const r = await this.awaitApproval(e, tool, extra);
    if ((r._meta?.['latchgate/approval'] as { status?: string } | undefined)?.status !== 'pending') this.held.delete(key);
    return r;
  }

  /**
   * The same call again after it was held: still pending, the same approval
   * is named; approved, the gate's run of the held request is the answer;
   * denied, expired or revoked, that is the answer, and the next retry asks anew.
   */
  private async retryHeld(key: string, e: LatchGateApprovalRequired, tool: Tool | undefined, extra: CallExtra): Promise<CallToolResult> {
    try {
      const { status } = await this.gate.getApprovalStatus(e.approvalId, { signal: extra.signal });
      if (status === 'pending') return this.holdAndWait(key, e, tool, extra);
      this.held.delete(key);
      return successResult(await this.gate.waitForApproval(e.approvalId, { signal: extra.signal, intervalMs: APPROVAL_POLL_MS }), tool, e.approvalId);
    } catch (err) {
      if (extra.signal.aborted || !(err instanceof LatchGateError)) throw err;
      this.held.delete(key);
      return errorResult(err);
    }
  }

  /** Waits for the operator's decision (up to waitApprovalSeconds) and answers with the gate's run of the held request. */
  private async awaitApproval(e: LatchGateApprovalRequired, tool: Tool | undefined, extra: CallExtra): Promise<CallToolResult> {
    const seconds = this.o.waitApprovalSeconds;
    if (seconds <= 0) return pendingResult(e, tool, 0);
    const timeout = AbortSignal.timeout(seconds * 1000);
    const signal = AbortSignal.any([extra.signal, timeout]);
    const token = extra._meta?.progressToken;
    let ticks = 0;
    const progress = () => {
      if (token === undefined || signal.aborted) return;
      ticks++;
      void extra
        .sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: ticks, message: `waiting for an operator: ${approveCommand(e.approvalId)}` } })
        .catch(() => undefined);
    };
    progress();
    const ticker = setInterval(progress, PROGRESS_MS);
    try {
      return successResult(await this.gate.waitForApproval(e.approvalId, { signal, intervalMs: APPROVAL_POLL_MS }), tool, e.approvalId);
    } catch (err) {
      if (extra.signal.aborted) {
        this.log(`stopped waiting for approval ${e.approvalId}: the client cancelled the call (the approval stands; the gate runs the request if it is approved)`);
        throw err;
      }
      if (timeout.aborted) return pendingResult(e, tool, seconds);
      if (err instanceof LatchGateError) return errorResult(err);
      throw err;
    } finally {
      clearInterval(ticker);
    }
  }
}

type CallExtra = {
  signal: AbortSignal;
  _meta?: { progressToken?: string | number } | undefined;
  sendNotification: (n: ServerNotification) => Promise<void>;
};

/** A failure of the gate's client as a LatchGateError (a listing that timed out is the gate not answering). */
function asGateError(e: unknown, gate: LatchGateClient): LatchGateError {
  if (e instanceof LatchGateError) return e;
  const where = gate.endpoint.socket ?? gate.endpoint.baseUrl ?? 'the gate';
  const name = (e as Error)?.name;
  if (name === 'AbortError' || name === 'TimeoutError') return new LatchGateConnectionError('gate_unreachable', `the gate at ${where} did not answer in time`);
  return new LatchGateConnectionError('gate_unreachable', `cannot use the gate at ${where}: ${(e as Error)?.message ?? String(e)}`);
}

/**
 * Serves MCP on stdin/stdout until the client closes stdin. Resolves then;
 * diagnostics go to stderr.
 */
export async function serveStdio(o: McpServeOptions): Promise<void> {
  tuneJitForServing(); // a server for the client's session (src/runtime/jit-flags.ts)
  const s = new GateMcpServer(o);
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => (s.server.onclose = resolve));
  const close = () => void s.server.close().catch(() => undefined);
  process.stdin.once('end', close);
  process.stdout.on('error', close); // the client went away (EPIPE), however many writes fail
  const ep = s.gate.endpoint;
  (o.log ?? ((l: string) => process.stderr.write(`latchgate mcp: ${l}\n`)))(`serving the gate at ${ep.socket ? `unix://${ep.socket}` : ep.baseUrl} as ${s.gate.agentId}`);
  await s.warm();
  await s.server.connect(transport);
  await closed;
  s.dispose();
}
