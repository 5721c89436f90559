// Stage 8: the provider runs under the manifest's wall-clock limit, reaching
// the outside only through HostIo, which records what really happened.
import type { GateContext } from '../context.js';
import { HostIo, type ProviderOutput } from '../providers.js';
import type { ExecutionGrant } from '../types.js';
import type { ExecutionReceipt } from '../../ledger/receipt.js';
import type { LoadedAction } from '../registry.js';
import type { ExpandedRequest } from '../templates.js';

export interface Dispatched {
  output?: ProviderOutput;
  failure_class?: ExecutionReceipt['failure_class'];
  error?: string;
  io: HostIo;
  started_at: string;
  finished_at: string;
  duration_ms: number;
}

export async function dispatch(ctx: GateContext, action: LoadedAction, grant: ExecutionGrant, request: unknown, call?: ExpandedRequest): Promise<Dispatched> {
  const m = action.manifest;
  const provider = ctx.providers.get(m.provider_module_digest)!;
  const abort = new AbortController();
  const io = new HostIo(ctx.transport, m.resource_limits.max_io_calls, abort.signal);
  const t0 = performance.now();
  const started_at = new Date().toISOString();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), m.resource_limits.timeout_seconds * 1000);
  });
  const task = {
    action_id: m.action_id,
    grant_id: grant.grant_id,
    request,
    ...(call ? { call: { method: call.method, url: call.url, headers: call.headers, ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}) } } : {}),
  };
  let r: Omit<Dispatched, 'io' | 'started_at' | 'finished_at' | 'duration_ms'>;
  try {
    const out = await Promise.race([provider.execute(task, io, abort.signal), limit]);
    if (out === 'timeout') {
      abort.abort();
      r = { failure_class: 'timeout', error: `the provider exceeded ${m.resource_limits.timeout_seconds} s` };
    } else {
      r = out.ok ? { output: out } : { output: out, failure_class: 'provider_error', error: out.error ?? 'the provider reported a failure' };
    }
  } catch (e) {
    abort.abort();
    r = { failure_class: 'provider_error', error: (e as Error).message };
  } finally {
    clearTimeout(timer);
  }
  return { ...r, io, started_at, finished_at: new Date().toISOString(), duration_ms: Math.round((performance.now() - t0) * 1000) / 1000 };
}
