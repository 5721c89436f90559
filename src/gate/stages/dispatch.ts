// The provider runs under the manifest's wall-clock limit, reaching the
// outside only through HostIo, which records what really happened: the host
// functions made for this action and principal (openCallHosts, which also
// opened the connection to the template's target). The intent is the
// evidence that survives a crash during the call: its sync to disk starts
// here and runs while the provider is instantiated and starts, and HostIo
// holds every I/O call until it has landed. A failed sync fails the call
// before anything left the gate.
import type { GateContext } from '../context.js';
import { GateError } from '../errors.js';
import { need, type Dispatched, type Execution } from '../execution.js';
import { HostIo } from '../providers.js';

export async function dispatch(ctx: GateContext, x: Execution): Promise<void> {
  const m = need(x, 'action').manifest;
  const grant = need(x, 'grant');
  const call = need(x, 'pre').call;
  const provider = ctx.providers.get(m.provider_module_digest)!;
  const abort = new AbortController();
  const { hosts, unserved } = need(x, 'hosts');
  let syncError: Error | undefined;
  const durable = ctx.wal.sync().catch((e: unknown) => {
    syncError = e instanceof Error ? e : new Error(String(e));
    throw new Error(`store_unavailable: the intent could not be made durable (${syncError.message}); nothing was done`);
  });
  durable.catch(() => undefined); // read below, after the provider
  const io = new HostIo(ctx.transport, m.resource_limits.max_io_calls, abort.signal, hosts, durable);
  // A component is hashed again and, the first time, compiled: not part of the call's time.
  const unready = unserved === undefined ? await provider.prepare?.() : undefined;
  const t0 = performance.now();
  const started_at = new Date().toISOString();
  let timer: NodeJS.Timeout | undefined;
  // A provider that times itself (waiting for a free worker is not its time) gets this timer as a backstop only.
  const limitMs = m.resource_limits.timeout_seconds * 1000;
  const limit = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), provider.timesItself ? limitMs * 2 + 10_000 : limitMs);
  });
  const task = {
    action_id: m.action_id,
    grant_id: grant.grant_id,
    request: x.request,
    ...(call ? { call: { method: call.method, url: call.url, headers: call.headers, ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}) } } : {}),
  };
  let r: Omit<Dispatched, 'io' | 'started_at' | 'finished_at' | 'duration_ms'>;
  try {
    // The configuration cannot serve the action (no file root, say): nothing runs, and the receipt says why.
    if (unserved !== undefined) throw new Error(unserved);
    const out = unready ?? (await Promise.race([provider.execute(task, io, abort.signal, m), limit]));
    if (out === 'timeout') {
      abort.abort();
      r = { failure_class: 'timeout', error: `the provider exceeded ${m.resource_limits.timeout_seconds} s` };
    } else {
      r = out.ok ? { output: out } : { output: out, failure_class: out.failure_class ?? 'provider_error', error: out.error ?? 'the provider reported a failure' };
    }
  } catch (e) {
    abort.abort();
    r = { failure_class: 'provider_error', error: (e as Error).message };
  } finally {
    clearTimeout(timer);
    // Whatever still waits for the intent is refused when it lands: the call is over.
    io.end();
    hosts?.http?.close();
  }
  await durable.catch(() => undefined);
  if (syncError) throw new GateError('store_unavailable', `the intent could not be made durable (${syncError.message}); nothing was dispatched`);
  x.dispatched = { ...r, io, started_at, finished_at: new Date().toISOString(), duration_ms: Math.round((performance.now() - t0) * 1000) / 1000 };
}
