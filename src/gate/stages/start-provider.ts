// The provider starts once the plan is final and its hosts are made: its
// instance is taken and its code runs while the grant is signed and the
// intent written, on the worker's thread. It reaches the outside only through
// HostIo, which holds every I/O call until dispatch has made the intent
// durable, so nothing leaves the gate before the grant, the debit and the
// intent stand and would survive a power cut. A run that ends before
// dispatch (a budget spent meanwhile, say) stops the provider; an I/O call
// it made is refused, never done. Only a confined provider (a WebAssembly
// component, Provider.confined) starts early: any other could act without
// HostIo, and is started once the intent is durable (or not at all).
import { randomUUID } from 'node:crypto';
import type { GateContext } from '../context.js';
import { need, type Execution, type ProviderRun } from '../execution.js';
import { callBodyText } from '../provider-hosts.js';
import { HostIo } from '../providers.js';

/**
 * Resolves once the event loop has been through its poll phase: the first
 * immediate runs in this turn's check phase, the second in the next turn's,
 * after that turn has handled the I/O that was ready (a connect completed,
 * say).
 */
const afterPoll = (): Promise<void> => new Promise((go) => setImmediate(() => setImmediate(go)));

export async function startProvider(ctx: GateContext, x: Execution): Promise<void> {
  const m = need(x, 'action').manifest;
  const call = need(x, 'pre').call;
  const { hosts, unserved } = need(x, 'hosts');
  const provider = ctx.providers.get(m.provider_module_digest)!;

  // The grant's id, known now: the provider's task names it (reserveAndSignGrant signs it).
  const grantId = randomUUID();
  const abort = new AbortController();
  let release!: (failure?: Error) => void;
  const landed = new Promise<void>((resolve, reject) => {
    release = (failure) => (failure ? reject(failure) : resolve());
  });
  landed.catch(() => undefined); // read by each I/O call
  // The run's end (its answer and receipt settled, or a refusal): the provider's worker may make its next
  // instance. The pipeline ends before the HTTP layer writes the answer, in the same turn of the event
  // loop: the immediate comes after that write, so neither the message to the worker nor the instance's
  // making holds the answer up.
  let ended!: () => void;
  const settled = new Promise<void>((resolve) => (ended = resolve));
  x.onEnd.push(() => setImmediate(ended));
  const io = new HostIo(ctx.transport, m.resource_limits.max_io_calls, abort.signal, hosts, landed, settled);
  // A component is hashed again and, the first time, compiled: not part of the call's time.
  const unready = unserved === undefined ? await provider.prepare?.() : undefined;
  const t0 = performance.now();
  const started_at = new Date().toISOString();
  const task = {
    action_id: m.action_id,
    grant_id: grantId,
    request: x.request,
    ...(call ? { call: { method: call.method, url: call.url, headers: call.headers, ...(call.body !== undefined ? { body: callBodyText(call) } : {}) } } : {}),
  };
  const outcome = (async (): Promise<Awaited<ProviderRun['outcome']>> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      // The configuration cannot serve the action (no file root, say): nothing runs, and the receipt says why.
      if (unserved !== undefined) throw new Error(unserved);
      // Rejects (nothing started) when the run ends before dispatch.
      if (!provider.confined && !unready) await landed;
      // A provider that times itself (waiting for a free worker is not its time) gets this timer as a backstop only.
      const limitMs = m.resource_limits.timeout_seconds * 1000;
      const limit = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), provider.timesItself ? limitMs * 2 + 10_000 : limitMs);
      });
      const out = unready ?? (await Promise.race([provider.execute(task, io, abort.signal, m), limit]));
      if (out === 'timeout') {
        abort.abort();
        return { failure_class: 'timeout', error: `the provider exceeded ${m.resource_limits.timeout_seconds} s` };
      }
      return out.ok ? { output: out } : { output: out, failure_class: out.failure_class ?? 'provider_error', error: out.error ?? 'the provider reported a failure' };
    } catch (e) {
      abort.abort();
      return { failure_class: 'provider_error', error: String((e as Error | null)?.message ?? e) };
    } finally {
      clearTimeout(timer);
      // Whatever still waits for the intent is refused when it lands: the call is over.
      io.end();
      hosts?.http?.close();
    }
  })();
  x.providerRun = { grantId, io, outcome, release, started_at, t0 };
  // The stages after this one run without a break (the debit, grant and intent): first the call
  // reaches its worker, and the loop polls once, so the connection openCallHosts started sends its
  // TLS ClientHello now, where a loopback or LAN connect has completed, and the handshake runs
  // while the grant is signed and the intent made durable, not after.
  await afterPoll();
  x.onEnd.push(() => {
    if (x.dispatched) return;
    release(new Error('call_ended: the run ended before dispatch; nothing was done'));
    abort.abort();
  });
}
