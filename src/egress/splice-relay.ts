// Relays two connected net.Sockets in the kernel (native/relay.cc: splice()
// through a pipe per direction, on a thread of its own) instead of through
// Node's streams: the bytes never enter JavaScript.
//
// The hand-off: both sockets stop reading at once (libuv readStop), their
// write queues drain (the proxy's "200 Connection Established" may still be
// queued), whatever Node had already read (bytes that came right behind the
// CONNECT head, an upstream's greeting) is taken out of their readable buffers
// and written first by the relay, and the relay starts on the same fds. Until
// it is done, Node keeps the handles but must not touch the fds: the socket
// methods that would read, write, shut down or close them are replaced for the
// duration. A destroy() in the meantime (proxy-chain's closeConnections, an
// error) stops the relay and takes effect once the relay thread let go of the
// fds, so an fd number is never closed (and reused by another connection)
// while the relay still moves bytes through it. When the relay ends, onDone
// gets the counts and the reason, then both sockets are destroyed.
import type net from 'node:net';
import { constants } from 'node:os';
import { loadAddon, type NativeRelay, type NativeRelayResult } from '../native/addon.js';

export interface RelayResult extends NativeRelayResult {
  /** The errno's name (ECONNRESET, EPIPE, ...) when there is one. */
  code?: string;
}

export interface SpliceRelayOptions {
  /** No byte either way for this long ends the relay (reason idle_timeout). 0 or absent: no limit. */
  idleMs?: number;
  /** Called once with the result, before both sockets are destroyed. */
  onDone?: (result: RelayResult) => void;
}

export interface SpliceRelay {
  /** Resolves once, after onDone, with the same result. */
  readonly done: Promise<RelayResult>;
  /** Ends the relay (reason stopped, unless it already ended); the result follows. */
  stop(): void;
}

type Cb = (err?: Error | null) => void;

/** The net.Socket internals the hand-off works with. */
interface SocketInternals {
  _handle: { fd?: number; reading?: boolean; readStop?: () => number; constructor: { name: string } } | null;
  _read(n: number): void;
  _write(chunk: unknown, encoding: BufferEncoding, cb: Cb): void;
  _writev?(chunks: unknown[], cb: Cb): void;
  _final(cb: Cb): void;
  _destroy(err: Error | null, cb: Cb): void;
}

const GUARDED = ['_read', '_write', '_writev', '_final', '_destroy'] as const;

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

function relayedError(): Error {
  return Object.assign(new Error('this socket is relayed by the kernel: Node must not write to it'), { code: 'ERR_SOCKET_RELAYED' });
}

function socketFd(s: net.Socket, side: string): number {
  const h = (s as unknown as SocketInternals)._handle;
  const fd = h?.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    const what = h ? `a ${h.constructor.name} handle without a file descriptor` : 'no handle';
    throw new Error(`splice relay: socket ${side} has ${what}; only kernel sockets can be relayed`);
  }
  return fd;
}

function isLoopbackTcp(s: net.Socket): boolean {
  if (s.remoteFamily !== 'IPv4' && s.remoteFamily !== 'IPv6') return false;
  const addr = (s.remoteAddress ?? '').toLowerCase().replace(/^::ffff:/, '');
  return addr === '::1' || /^127\./.test(addr);
}

/** One socket handed over to the relay: reading stopped, methods guarded until release(). */
class Held {
  readonly #s: net.Socket;
  readonly #x: SocketInternals;
  readonly #saved = new Map<string, PropertyDescriptor | undefined>();
  #deferred: [Error | null, Cb] | null = null;

  constructor(s: net.Socket, onDestroy: (err: Error | null) => void) {
    this.#s = s;
    this.#x = s as unknown as SocketInternals;
    for (const k of GUARDED) this.#saved.set(k, Object.getOwnPropertyDescriptor(s, k));
    this.#set('_read', () => undefined); // the relay reads, not Node
    this.#set('_final', () => undefined); // no shutdown from Node (allowHalfOpen=false would end it on EOF); release() destroys
    this.#set('_destroy', (err: Error | null, cb: Cb) => {
      this.#deferred = [err, cb]; // closed by release(), once the relay thread let go of the fd
      onDestroy(err);
    });
    // pause() alone lets libuv read on until the readable buffer is full.
    const h = this.#x._handle;
    if (h?.reading && typeof h.readStop === 'function') {
      h.reading = false;
      this.readStopError = h.readStop();
    }
    s.pause();
  }

  /** The libuv error readStop() returned (0: none). */
  readStopError = 0;

  /** Once the write queue is empty: Node's writes would interleave with the relay's. */
  guardWrites(): void {
    this.#set('_write', (_c: unknown, _e: BufferEncoding, cb: Cb) => cb(relayedError()));
    this.#set('_writev', (_c: unknown[], cb: Cb) => cb(relayedError()));
  }

  /** What Node had read and not handed out: the relay sends it first. */
  takeBuffered(): Buffer | null {
    const parts: Buffer[] = [];
    for (let c = this.#s.read() as Buffer | string | null; c !== null; c = this.#s.read() as Buffer | string | null) {
      parts.push(typeof c === 'string' ? Buffer.from(c, this.#s.readableEncoding ?? 'utf8') : c);
    }
    return parts.length === 0 ? null : Buffer.concat(parts);
  }

  /** Restores the socket's methods and destroys it (running a destroy that was held back). */
  release(): void {
    const x = this.#x as unknown as Record<string, unknown>;
    for (const [k, d] of this.#saved) {
      if (d) Object.defineProperty(this.#s, k, d);
      else delete x[k];
    }
    const deferred = this.#deferred;
    this.#deferred = null;
    // With the methods restored, _destroy is the socket's own again.
    if (deferred) this.#x._destroy(deferred[0], deferred[1]);
    else this.#s.destroy();
  }

  #set(k: (typeof GUARDED)[number], fn: unknown): void {
    Object.defineProperty(this.#s, k, { value: fn, configurable: true, writable: true, enumerable: false });
  }
}

/**
 * Hands a and b (connected, not destroyed, with kernel fds) to the native
 * relay. Throws, leaving both sockets untouched, when one cannot be relayed;
 * from the return on, the relay owns them until onDone.
 */
export function spliceRelay(a: net.Socket, b: net.Socket, opts: SpliceRelayOptions = {}): SpliceRelay {
  const idleMs = opts.idleMs ?? 0;
  if (!Number.isInteger(idleMs) || idleMs < 0) throw new TypeError(`splice relay: idleMs must be an integer >= 0 (got ${String(idleMs)})`);
  if (a === b) throw new TypeError('splice relay: a and b are the same socket');
  for (const [s, side] of [[a, 'a'], [b, 'b']] as const) {
    if (s.destroyed) throw new Error(`splice relay: socket ${side} is already destroyed`);
    if (s.readableEncoding !== null) throw new Error(`splice relay: socket ${side} has an encoding set; bytes would be lost`);
    socketFd(s, side);
  }
  const addon = loadAddon();

  let phase: 'flushing' | 'running' | 'done' = 'flushing';
  let native: NativeRelay | null = null;
  let timer: NodeJS.Timeout | undefined;
  let resolveDone!: (r: RelayResult) => void;
  const done = new Promise<RelayResult>((resolve) => (resolveDone = resolve));
  const held: Held[] = [];

  const finish = (r: RelayResult): void => {
    if (phase === 'done') return;
    phase = 'done';
    clearTimeout(timer);
    if (r.errno !== undefined && r.code === undefined) {
      const code = ERRNO_NAMES.get(r.errno);
      if (code !== undefined) r.code = code;
    }
    try {
      opts.onDone?.(r);
    } finally {
      for (const h of held) h.release();
      resolveDone(r);
    }
  };
  const ended = (reason: 'stopped' | 'error', extra: Partial<RelayResult> = {}): void =>
    finish({ bytesAtoB: 0, bytesBtoA: 0, reason, closedFirst: null, ...extra });

  const stop = (): void => {
    if (phase === 'running') native?.stop();
    else if (phase === 'flushing') ended('stopped');
  };
  const onDestroy = (side: 'a' | 'b') => (err: Error | null) => {
    if (phase === 'flushing' && err) {
      const e = err as NodeJS.ErrnoException;
      const errno = typeof e.errno === 'number' ? Math.abs(e.errno) : undefined;
      ended('error', { side, step: 'before the hand-off', message: e.message, ...(errno !== undefined ? { errno } : {}), ...(e.code ? { code: e.code } : {}) });
      return;
    }
    stop();
  };

  const t0 = Date.now();
  let delay = 1;
  const start = (): void => {
    if (phase !== 'flushing') return;
    if (a.writableLength > 0 || b.writableLength > 0) {
      // Rare (a peer slow to take the last bytes Node wrote) and short: poll.
      if (idleMs > 0 && Date.now() - t0 >= idleMs) {
        finish({ bytesAtoB: 0, bytesBtoA: 0, reason: 'idle_timeout', closedFirst: null });
        return;
      }
      timer = setTimeout(start, delay);
      delay = Math.min(delay * 2, 50);
      return;
    }
    let fdA: number;
    let fdB: number;
    try {
      fdA = socketFd(a, 'a');
      fdB = socketFd(b, 'b');
    } catch (e) {
      ended('error', { step: 'hand-off', message: (e as Error).message });
      return;
    }
    for (const h of held) h.guardWrites();
    const initialAtoB = held[0]!.takeBuffered();
    const initialBtoA = held[1]!.takeBuffered();
    a.setTimeout(0);
    b.setTimeout(0);
    for (const [s, fd] of [[a, fdA], [b, fdB]] as const) {
      // A loopback leg (the box's side of every tunnel) has no link to pace
      // for; BBR, a common default, paces anyway (hrtimers, with no fq qdisc)
      // and halves what the relay can send. Reno is always allowed, also to
      // unprivileged users. Performance only: a refusal changes nothing else.
      if (isLoopbackTcp(s)) addon.setTcpCongestion(fd, 'reno');
    }
    try {
      native = addon.relay(fdA, fdB, initialAtoB, initialBtoA, idleMs, finish);
      phase = 'running';
    } catch (e) {
      const err = e as Error & { step?: string; errno?: number };
      ended('error', { step: err.step ?? 'relay', message: err.message, ...(err.errno !== undefined ? { errno: err.errno } : {}) });
    }
  };

  held.push(new Held(a, onDestroy('a')), new Held(b, onDestroy('b')));
  const stopFailed = held.findIndex((h) => h.readStopError !== 0);
  if (stopFailed >= 0) {
    const rc = held[stopFailed]!.readStopError;
    ended('error', { side: stopFailed === 0 ? 'a' : 'b', step: 'readStop', errno: Math.abs(rc), message: `readStop: libuv error ${rc}` });
  } else {
    start();
  }
  return { done, stop };
}
