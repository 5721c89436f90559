// The tools this principal may call, as the gate lists them: one GET
// /v1/actions per refresh (the actions with `callable`, src/gate/callable.ts),
// and GET /v1/actions/:id only for an action whose digest is new. A refresh
// says whether the set of tools changed, so the server can send
// notifications/tools/list_changed.
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { LatchGateClient } from '../sdk/index.js';
import { toolFor, toolName } from './tools.js';

export interface ToolSet {
  tools: Tool[];
  /** Tool name -> action id. */
  actions: Map<string, string>;
  byName: Map<string, Tool>;
  /** The ids and digests the set was made of: equal fingerprints, equal tools. */
  fingerprint: string;
}

export class Catalogue {
  private readonly manifests = new Map<string, Record<string, unknown>>();
  private set: ToolSet | undefined;
  private inflight: Promise<ToolSet> | undefined;

  constructor(
    private readonly client: LatchGateClient,
    /** How long one refresh may take before it fails (a gate that does not answer). */
    private readonly timeoutMs: number,
    private readonly log: (line: string) => void,
  ) {}

  /** The set from the last refresh (undefined before the first). */
  get current(): ToolSet | undefined {
    return this.set;
  }

  /** Lists again; concurrent callers share one refresh. */
  refresh(): Promise<ToolSet> {
    this.inflight ??= this.load().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async load(): Promise<ToolSet> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    // A gate older than `callable` lists every action: offer them all, the gate decides each call.
    const listed = (await this.client.listActions({ signal })).filter((a) => a.callable !== false).sort((a, b) => (a.action_id < b.action_id ? -1 : a.action_id > b.action_id ? 1 : 0));
    const fingerprint = listed.map((a) => `${a.action_id}@${String(a.action_digest ?? a.version)}`).join('\n');
    if (this.set?.fingerprint === fingerprint) return this.set;
    const tools: Tool[] = [];
    const actions = new Map<string, string>();
    const byName = new Map<string, Tool>();
    const keep = new Set<string>();
    for (const a of listed) {
      const key = `${a.action_id}@${String(a.action_digest ?? a.version)}`;
      keep.add(key);
      let m = this.manifests.get(key);
      if (!m) {
        m = await this.client.getAction(a.action_id, { signal });
        this.manifests.set(key, m);
      }
      const name = toolName(a.action_id, new Set(actions.keys()));
      const t = toolFor(name, m);
      if ('skip' in t) {
        this.log(`action ${a.action_id} is not offered as a tool: ${t.skip}`);
        continue;
      }
      tools.push(t);
      actions.set(name, a.action_id);
      byName.set(name, t);
    }
    for (const k of this.manifests.keys()) if (!keep.has(k)) this.manifests.delete(k);
    this.set = { tools, actions, byName, fingerprint };
    return this.set;
  }
}
