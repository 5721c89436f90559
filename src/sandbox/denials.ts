// The run's network refusals, for the user who started the box: every event
// of the box's exits (the CONNECT proxy, the credential proxy, the resolver)
// is seen here as it is recorded, before repeats are counted into ledger
// summaries, and each refused host gets one entry: what was refused, how
// often, and what would allow it (denial-advice.ts). The launcher says the
// first refusal of each kind as it happens (when its stderr is not the
// agent's terminal) and the whole list at exit; --json gets the counts.
import type { AuditEventInput } from '../core/audit-event.js';
import { denialFix, printableName } from '../egress/denial-advice.js';

/** Hosts listed at most; the refusals of any further host are counted under otherHosts. */
const MAX_HOSTS = 64;

/** One kind of refusal of one host, said the first time it happens. */
export interface DenialNotice {
  host: string;
  /** What was refused: "CONNECT :443 host_not_allowed", "DNS lookup dns_refused", "credential route unknown_route". */
  what: string;
  reason: string;
  fix: string | null;
}

export interface DeniedHost {
  host: string;
  count: number;
  /** Count per reason. */
  reasons: Record<string, number>;
  /** What would allow it, one entry per distinct fix. */
  fix: string[];
}

export interface DenialReport {
  total: number;
  /** Refused by the CONNECT proxy, the credential proxy, the resolver. */
  connect: number;
  credential: number;
  dns: number;
  hosts: DeniedHost[];
  /** Refusals of hosts beyond the listed ones. */
  otherHosts: number;
}

interface Entry {
  host: string;
  count: number;
  kinds: Map<string, { what: string; reason: string; count: number; fix: string | null }>;
}

export interface DenialContext {
  /** The CONNECT proxy's ports (for a port_not_allowed fix). */
  allowPorts: readonly number[];
  /** The box has the HTTPS proxy. */
  proxied: boolean;
}

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
/** An event's upstream_proxy detail, when it is one the exits wrote. */
function viaProxy(v: unknown): { url: string; source: string } | null {
  const o = v as { url?: unknown; source?: unknown } | null;
  return o && typeof o.url === 'string' && typeof o.source === 'string' ? { url: o.url, source: o.source } : null;
}
/** A DNS name in presentation form is printable ASCII; anything else is not shown. */
const DNS_NAME = /^[\x21-\x7e]{1,1024}$/;

export class DenialSummary {
  readonly #entries = new Map<string, Entry>();
  readonly #counts = { total: 0, connect: 0, credential: 0, dns: 0, otherHosts: 0 };

  constructor(private readonly context: DenialContext) {}

  /** Takes one event of the box's exits; returns a notice when it is the first refusal of its kind for its host. */
  add(e: AuditEventInput): DenialNotice | null {
    // A credential route's upstream proxy failing is an error, not a refusal, but the user must hear of it the same way.
    const proxyFailed = e.decision === 'error' && /^upstream_proxy_/.test(String((e.details as { reason?: unknown } | undefined)?.reason));
    if (e.decision !== 'deny' && !proxyFailed) return null;
    const r = this.#refusal(e);
    if (!r) return null;
    this.#counts.total++;
    this.#counts[r.exit]++;
    let entry = this.#entries.get(r.host);
    if (!entry) {
      if (this.#entries.size >= MAX_HOSTS) {
        this.#counts.otherHosts++;
        return null;
      }
      entry = { host: r.host, count: 0, kinds: new Map() };
      this.#entries.set(r.host, entry);
    }
    entry.count++;
    const kind = entry.kinds.get(r.what);
    if (kind) {
      kind.count++;
      return null;
    }
    entry.kinds.set(r.what, { what: r.what, reason: r.reason, count: 1, fix: r.fix });
    return { host: r.host, what: r.what, reason: r.reason, fix: r.fix };
  }

  report(): DenialReport {
    const hosts = [...this.#entries.values()].map((e) => {
      const reasons: Record<string, number> = {};
      for (const k of e.kinds.values()) reasons[k.reason] = (reasons[k.reason] ?? 0) + k.count;
      const fix = [...new Set([...e.kinds.values()].flatMap((k) => (k.fix ? [k.fix] : [])))];
      return { host: e.host, count: e.count, reasons, fix };
    });
    return { ...this.#counts, hosts };
  }

  /** The summary at exit, one line per host; empty when nothing was refused. */
  lines(principal: string): string[] {
    if (this.#counts.total === 0) return [];
    const n = this.#entries.size + (this.#counts.otherHosts > 0 ? 1 : 0);
    const out = [
      `the box's network requests were refused ${this.#counts.total} time${this.#counts.total === 1 ? '' : 's'} (${n} host${n === 1 ? '' : 's'}); each in the ledger: latchgate audit --event-type egress --principal ${principal}`,
    ];
    for (const e of this.#entries.values()) {
      const kinds = [...e.kinds.values()];
      const fixes = [...new Set(kinds.flatMap((k) => (k.fix ? [k.fix] : [])))];
      out.push(`  ${e.host}: ${kinds.map((k) => `${k.what} x${k.count}`).join(', ')}${fixes.length ? `; fix: ${fixes.join('; ')}` : ''}`);
    }
    if (this.#counts.otherHosts > 0) out.push(`  ${this.#counts.otherHosts} more refusal(s) of other hosts (see the ledger)`);
    return out;
  }

  /** The host, what was refused and the fix of one event; null for an event that is no refusal of the exits. */
  #refusal(e: AuditEventInput): { exit: 'connect' | 'credential' | 'dns'; host: string; what: string; reason: string; fix: string | null } | null {
    const d = (e.details ?? {}) as Record<string, unknown>;
    const reason = str(d.reason);
    if (!reason || !/^[a-z_]{1,64}$/.test(reason)) return null;
    const port = typeof d.port === 'number' ? d.port : null;
    switch (e.event_type) {
      case 'egress': {
        const host = printableName(d.host) ? d.host : null;
        const addresses = Array.isArray(d.addresses) ? d.addresses.filter((a): a is string => typeof a === 'string' && /^[0-9a-f.:]{2,45}$/i.test(a)) : [];
        const where = reason === 'address_not_allowed' && addresses[0] ? ` (resolves to ${addresses[0]})` : '';
        const fix = denialFix({ reason, host, port, addresses, allowPorts: this.context.allowPorts, upstreamProxy: viaProxy(d.upstream_proxy) }, 'operator');
        return { exit: 'connect', host: host ?? '(no host named)', what: `CONNECT${port ? ` :${port}` : ''} ${reason}${where}`, reason, fix };
      }
      case 'egress_dns': {
        const name = str(d.name);
        const host = name && DNS_NAME.test(name) ? name : '(unreadable DNS query)';
        const fix = denialFix({ reason, host: name, allowlisted: d.allowlisted === true, proxied: this.context.proxied }, 'operator');
        return { exit: 'dns', host, what: `DNS lookup ${reason}`, reason, fix };
      }
      case 'credential_proxy': {
        const route = printableName(d.route) ? d.route : null;
        const asked = reason === 'unknown_route' ? /^\/([a-z0-9_-]{1,64})(?:[/?]|$)/.exec(str(d.path) ?? '')?.[1] ?? null : route;
        const fix = denialFix({ reason, host: asked, upstreamProxy: viaProxy(d.upstream_proxy) }, 'operator');
        return { exit: 'credential', host: `credential route ${asked ?? '(none named)'}`, what: `credential proxy ${reason}`, reason, fix };
      }
      default:
        return null;
    }
  }
}

/** A notice as the launcher says it while the box runs. */
export function describeNotice(n: DenialNotice): string {
  return `refused: ${n.host}: ${n.what}${n.fix ? `; fix: ${n.fix}` : ''}`;
}
