// The host imports of wit/latchgate-io.wit, lowered by hand (canonical ABI
// flattening), with wrappers that return an HttpResult / FsResult.
import { liftBytes, liftString, lowerBytes, lowerPairs, lowerString, retArea } from './abi';

// @ts-ignore: decorator
@external('latchgate:io/http@0.1.0', 'fetch')
declare function httpFetch(
  mp: usize, ml: usize, up: usize, ul: usize, hp: usize, hl: usize,
  hasBody: i32, bp: usize, bl: usize, hasTimeout: i32, timeout: u32, ret: usize,
): void;

// @ts-ignore: decorator
@external('latchgate:io/fs@0.1.0', 'read')
declare function fsRead(pp: usize, pl: usize, ret: usize): void;

// @ts-ignore: decorator
@external('latchgate:io/fs@0.1.0', 'write')
declare function fsWrite(pp: usize, pl: usize, dp: usize, dl: usize, mode: i32, ret: usize): void;

// @ts-ignore: decorator
@external('latchgate:io/fs@0.1.0', 'delete')
declare function fsDelete(pp: usize, pl: usize, ret: usize): void;

// @ts-ignore: decorator
@external('latchgate:io/fs@0.1.0', 'list')
declare function fsList(pp: usize, pl: usize, ret: usize): void;

// @ts-ignore: decorator
@external('latchgate:io/fs@0.1.0', 'stat')
declare function fsStat(pp: usize, pl: usize, ret: usize): void;

// @ts-ignore: decorator
@external('latchgate:io/log@0.1.0', 'log')
declare function logLine(level: i32, mp: usize, ml: usize, fp: usize, fl: usize): void;

export const KINDS: string[] = ['file', 'dir', 'symlink', 'other'];

export class HttpResult {
  error: string | null = null;
  status: i32 = 0;
  headerNames: string[] = [];
  headerValues: string[] = [];
  body: Uint8Array = new Uint8Array(0);
}

export function fetch(method: string, url: string, names: string[], values: string[], body: Uint8Array | null): HttpResult {
  const m = lowerString(method);
  const u = lowerString(url);
  const h = lowerPairs(names, values);
  const ret = retArea(24);
  if (body != null) {
    const b = lowerBytes(body);
    httpFetch(m.ptr, m.len, u.ptr, u.len, h.ptr, h.len, 1, b.ptr, b.len, 0, 0, ret);
  } else httpFetch(m.ptr, m.len, u.ptr, u.len, h.ptr, h.len, 0, 0, 0, 0, 0, ret);
  const r = new HttpResult();
  if (load<u8>(ret) != 0) {
    r.error = liftString(load<u32>(ret + 4), load<u32>(ret + 8));
    return r;
  }
  r.status = <i32>load<u16>(ret + 4);
  const hp = <usize>load<u32>(ret + 8);
  const hl = <i32>load<u32>(ret + 12);
  for (let i = 0; i < hl; i++) {
    const e = hp + <usize>i * 16;
    r.headerNames.push(liftString(load<u32>(e), load<u32>(e + 4)));
    r.headerValues.push(liftString(load<u32>(e + 8), load<u32>(e + 12)));
  }
  r.body = liftBytes(load<u32>(ret + 16), load<u32>(ret + 20));
  return r;
}

export class FsEntry {
  constructor(
    public name: string,
    public kind: string,
    public size: u64,
  ) {}
}

export class FsResult {
  error: string | null = null;
  data: Uint8Array = new Uint8Array(0);
  entries: FsEntry[] = [];
  kind: string = '';
  size: u64 = 0;
  mtimeMs: u64 = 0;
}

function failed(ret: usize, at: usize): FsResult | null {
  if (load<u8>(ret) == 0) return null;
  const r = new FsResult();
  r.error = liftString(load<u32>(ret + at), load<u32>(ret + at + 4));
  return r;
}

export function read(path: string): FsResult {
  const p = lowerString(path);
  const ret = retArea(12);
  fsRead(p.ptr, p.len, ret);
  const e = failed(ret, 4);
  if (e != null) return e;
  const r = new FsResult();
  r.data = liftBytes(load<u32>(ret + 4), load<u32>(ret + 8));
  return r;
}

export function write(path: string, data: Uint8Array, create: bool): FsResult {
  const p = lowerString(path);
  const d = lowerBytes(data);
  const ret = retArea(12);
  fsWrite(p.ptr, p.len, d.ptr, d.len, create ? 0 : 1, ret);
  const e = failed(ret, 4);
  return e != null ? e : new FsResult();
}

export function remove(path: string): FsResult {
  const p = lowerString(path);
  const ret = retArea(12);
  fsDelete(p.ptr, p.len, ret);
  const e = failed(ret, 4);
  return e != null ? e : new FsResult();
}

export function list(path: string): FsResult {
  const p = lowerString(path);
  const ret = retArea(12);
  fsList(p.ptr, p.len, ret);
  const e = failed(ret, 4);
  if (e != null) return e;
  const r = new FsResult();
  const base = <usize>load<u32>(ret + 4);
  const n = <i32>load<u32>(ret + 8);
  for (let i = 0; i < n; i++) {
    const at = base + <usize>i * 24;
    r.entries.push(new FsEntry(liftString(load<u32>(at), load<u32>(at + 4)), KINDS[load<u8>(at + 8) & 3], load<u64>(at + 16)));
  }
  return r;
}

export function stat(path: string): FsResult {
  const p = lowerString(path);
  const ret = retArea(32);
  fsStat(p.ptr, p.len, ret);
  const e = failed(ret, 8);
  if (e != null) return e;
  const r = new FsResult();
  r.kind = KINDS[load<u8>(ret + 8) & 3];
  r.size = load<u64>(ret + 16);
  r.mtimeMs = load<u64>(ret + 24);
  return r;
}

/** level: 0 debug, 1 info, 2 warn, 3 error. */
export function log(level: i32, message: string, names: string[], values: string[]): void {
  const m = lowerString(message);
  const f = lowerPairs(names, values);
  logLine(level, m.ptr, m.len, f.ptr, f.len);
}
