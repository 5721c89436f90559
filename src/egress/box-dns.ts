// The box's resolver: 127.0.0.1:53 (UDP and TCP) inside the box's network
// namespace, on sockets the box's init made there and the launcher serves, as
// it serves the other exits. It resolves nothing: every query is answered at
// once with REFUSED (and, to a query that speaks EDNS, an Extended DNS Error
// "Prohibited" whose text says what would allow the name), so a program that
// looks a name up fails at once with a reason instead of waiting for a
// timeout, and the box gains no way out through DNS. Each name asked is an
// event_type 'egress_dns' refusal through opts.record (the launcher counts
// repeats into summaries: src/ledger/coalesce.ts).
//
// Bounds, since the box may flood it: answers (and events) at most
// queriesPerSecond with a burst, beyond which packets are dropped unanswered
// and counted; TCP connections capped, each closed when idle or when it
// leaves 64 KiB of answers unread, messages of 65535 bytes at most (RFC 7766
// framing).
import dgram from 'node:dgram';
import net from 'node:net';
import type { AuditEventInput } from '../core/audit-event.js';
import type { HostAllowlist } from './allowlist.js';
import { denialFix } from './denial-advice.js';
import { buildAnswer, EDE_PROHIBITED, parseQuery, RCODE, typeName } from './dns-message.js';

export interface BoxDnsLimits {
  /** Answers per second, sustained. Default 200. */
  queriesPerSecond?: number;
  /** Answers at once before the rate applies. Default 400. */
  burst?: number;
  /** TCP connections open at once; more are closed at once. Default 16. */
  maxTcpConnections?: number;
  /** A TCP connection with nothing to read for this long is closed. Default 10 s. */
  tcpIdleMs?: number;
}

export interface BoxDnsOptions {
  /** The CONNECT proxy's allowlist (the answer says whether the name would be allowed through it); null: the box has no proxy. */
  allowlist: HostAllowlist | null;
  /** One event_type 'egress_dns' event per query answered. */
  record(e: AuditEventInput): void;
  limits?: BoxDnsLimits;
  /** Milliseconds, for the rate (tests inject a clock). */
  now?: () => number;
}

export interface BoxDnsStats {
  answered: number;
  /** Packets dropped unanswered: over the rate, too short for a header, or a response. */
  dropped: number;
  tcpConnections: number;
  recordFailures: number;
}

type Transport = 'udp' | 'tcp';

/** Answers a TCP client may leave unread before it is cut off. */
const MAX_UNREAD = 64 * 1024;

const RCODE_NAMES: Record<number, string> = { 1: 'FORMERR', 4: 'NOTIMP', 5: 'REFUSED', 16: 'BADVERS' };

function positive(v: number | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v <= 0) throw new TypeError(`BoxDns limits.${name} must be a positive integer (got ${String(v)})`);
  return v;
}

export class BoxDns {
  readonly #opts: BoxDnsOptions;
  readonly #limits: Required<BoxDnsLimits>;
  readonly #now: () => number;
  readonly #udp: dgram.Socket[] = [];
  readonly #tcp: net.Server[] = [];
  readonly #conns = new Set<net.Socket>();
  #tokens: number;
  #refilled: number;
  #closed = false;
  #stats: BoxDnsStats = { answered: 0, dropped: 0, tcpConnections: 0, recordFailures: 0 };

  constructor(opts: BoxDnsOptions) {
    if (typeof opts.record !== 'function') throw new TypeError('BoxDns: record must be a function');
    this.#opts = opts;
    const l = opts.limits ?? {};
    this.#limits = {
      queriesPerSecond: positive(l.queriesPerSecond, 200, 'queriesPerSecond'),
      burst: positive(l.burst, 400, 'burst'),
      maxTcpConnections: positive(l.maxTcpConnections, 16, 'maxTcpConnections'),
      tcpIdleMs: positive(l.tcpIdleMs, 10_000, 'tcpIdleMs'),
    };
    this.#now = opts.now ?? Date.now;
    this.#tokens = this.#limits.burst;
    this.#refilled = this.#now();
  }

  /** Serves the two sockets the box's init made (supervisor.ts RunHooks.onListen). */
  async serveFds(fds: { tcp: number; udp: number }): Promise<void> {
    await Promise.all([this.#listenUdp({ fd: fds.udp }), this.#listenTcp({ fd: fds.tcp })]);
  }

  /** Serves host:port over UDP and TCP (tests; port 0 picks one each). */
  async listen(host = '127.0.0.1', port = 0): Promise<{ udp: number; tcp: number }> {
    const [udp, tcp] = await Promise.all([this.#listenUdp({ address: host, port }), this.#listenTcp({ host, port })]);
    return { udp, tcp };
  }

  stats(): BoxDnsStats {
    return { ...this.#stats, tcpConnections: this.#conns.size };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const c of this.#conns) c.destroy();
    await Promise.all([
      ...this.#udp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      ...this.#tcp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    ]);
  }

  // -------------------------------------------------------------------------

  #listenUdp(options: dgram.BindOptions): Promise<number> {
    const s = dgram.createSocket({ type: 'udp4' });
    s.on('message', (msg, from) => {
      const answer = this.#answer(msg, 'udp');
      if (answer) s.send(answer, from.port, from.address, () => undefined);
    });
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.bind(options, () => {
        s.off('error', reject);
        s.on('error', () => undefined); // a send to a vanished client
        this.#udp.push(s);
        resolve(s.address().port);
      });
    });
  }

  #listenTcp(options: net.ListenOptions | { fd: number }): Promise<number> {
    const server = net.createServer((c) => this.#connection(c));
    server.maxConnections = this.#limits.maxTcpConnections;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(options as net.ListenOptions, () => {
        server.off('error', reject);
        server.on('error', () => undefined); // EMFILE on accept must not end the launcher
        this.#tcp.push(server);
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : 0);
      });
    });
  }

  /** RFC 7766 framing: a two-byte length, then the message; answered in order, one at a time. */
  #connection(c: net.Socket): void {
    if (this.#closed) {
      c.destroy();
      return;
    }
    this.#conns.add(c);
    c.on('close', () => this.#conns.delete(c));
    c.on('error', () => undefined);
    c.setTimeout(this.#limits.tcpIdleMs, () => c.destroy());
    let buf = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        const answer = this.#answer(msg, 'tcp');
        // Nothing to say to it, or it does not read its answers (they would pile up in the launcher).
        if (!answer || c.writableLength > MAX_UNREAD) {
          c.destroy();
          return;
        }
        const framed = Buffer.alloc(2 + answer.length);
        framed.writeUInt16BE(answer.length, 0);
        framed.set(answer, 2);
        c.write(framed);
      }
    });
  }

  /** Over the rate: false, and the packet is dropped unanswered (a flood costs the launcher the read, not the answer). */
  #take(): boolean {
    const now = this.#now();
    const elapsed = Math.max(0, now - this.#refilled);
    this.#refilled = now;
    this.#tokens = Math.min(this.#limits.burst, this.#tokens + (elapsed * this.#limits.queriesPerSecond) / 1000);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #answer(msg: Uint8Array, transport: Transport): Uint8Array | null {
    if (this.#closed || !this.#take()) {
      this.#stats.dropped++;
      return null;
    }
    const p = parseQuery(msg);
    if (p.kind === 'drop') {
      this.#stats.dropped++;
      return null;
    }
    this.#stats.answered++;
    if (p.kind === 'error') {
      this.#emit(p.question?.name ?? null, p.question?.type ?? null, 'malformed_query', p.rcode, transport, false, p.reason);
      return buildAnswer(p, p.rcode);
    }
    const q = p.query;
    const allowlisted = this.#allowlisted(q.question.name);
    this.#emit(q.question.name, q.question.type, 'dns_refused', RCODE.REFUSED, transport, allowlisted);
    return buildAnswer(q, RCODE.REFUSED, { code: EDE_PROHIBITED, text: this.#text(q.question.name, allowlisted) });
  }

  #allowlisted(name: string): boolean {
    const list = this.#opts.allowlist;
    return list !== null && name !== '.' && !name.includes('\\') && list.matches(name);
  }

  /** The Extended DNS Error's text: why, and what would allow the name. */
  #text(name: string, allowlisted: boolean): string {
    const fix = denialFix({ reason: 'dns_refused', host: name, allowlisted, proxied: this.#opts.allowlist !== null }, 'box');
    if (allowlisted) return `latchgate: this box resolves no names; ${name} ${fix}`;
    return `latchgate: this box resolves no names${fix ? `; to reach ${name}, ask the user who started it for ${fix}` : ''}`;
  }

  #emit(name: string | null, type: number | null, reason: string, rcode: number, transport: Transport, allowlisted: boolean, detail?: string): void {
    const details: Record<string, unknown> = {
      name,
      qtype: type === null ? null : typeName(type),
      reason,
      rcode: RCODE_NAMES[rcode] ?? String(rcode),
      transport,
      allowlisted,
    };
    if (detail !== undefined) details.detail = detail;
    try {
      this.#opts.record({ event_type: 'egress_dns', decision: 'deny', details });
    } catch {
      this.#stats.recordFailures++;
    }
  }
}
