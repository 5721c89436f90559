// The three-way merge of an agent's state file (state-files.ts): the
// content at launch (base), the box's final copy and the host file as it is
// at exit. The box's changes land key by key, but only where the profile's
// allow-list (box_keys) lets them; every other key, and every key named in
// host_only_keys wherever it occurs, stays exactly as the host has it, so
// the box can neither add, change nor remove anything the host's agent
// later runs or honours. An allow-list fails closed: a key a new agent
// version invents is the host's until the profile lists it.
//
// Values are plain JSON. Keys are own properties only ("__proto__" and
// "constructor" are ordinary keys here, never a prototype), and a report
// names what was dropped by JSON Pointer (RFC 6901), never by value.
import type { KeyRules } from '../config/box-requests.js';

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v);
const own = (o: JsonObject, k: string): Json | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);
/** Sets an own data property, also for "__proto__". */
export function setOwn(o: JsonObject, k: string, v: Json): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** Structural equality of JSON values (object key order ignored); undefined is "absent". */
export function sameJson(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]!));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && sameJson(a[k]!, b[k]!));
}

/** Whether a host-only name occurs anywhere inside v (through arrays too). */
function holdsHostOnly(v: Json | undefined, rules: KeyRules): boolean {
  if (v === undefined || v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some((x) => holdsHostOnly(x, rules));
  return Object.keys(v).some((k) => rules.hostOnly.has(k) || holdsHostOnly(v[k]!, rules));
}

type Place = 'host' | 'box' | 'partial';

/** Who decides a key path: the host, the box (at or under an allowed path), or its children (above one). */
function placeOf(path: readonly string[], rules: KeyRules): Place {
  if (path.length > 0 && rules.hostOnly.has(path[path.length - 1]!)) return 'host';
  let partial = path.length === 0;
  for (const p of rules.allow) {
    const n = Math.min(p.length, path.length);
    let i = 0;
    while (i < n && (p[i] === '*' || p[i] === path[i])) i++;
    if (i < n) continue;
    if (p.length <= path.length) return 'box';
    partial = true;
  }
  return partial ? 'partial' : 'host';
}

/** RFC 6901 JSON Pointer of a key path. */
export function pointer(path: readonly string[]): string {
  return path.map((k) => `/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('') || '/';
}

export interface MergeOutcome {
  value: JsonObject;
  /** Where the box changed something that was not merged (JSON Pointers, sorted). */
  dropped: string[];
}

/** A host-only key the box merely created empty ({} [] false null 0 "") grants nothing: not worth a report line. */
const emptyish = (v: Json | undefined) =>
  v === undefined || v === null || v === false || v === 0 || v === '' || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);

/**
 * Merges the box's changes (base -> box) into host. base, box and host are
 * JSON objects (a missing file is {}); none is modified.
 */
export function mergeState(base: JsonObject, box: JsonObject, host: JsonObject, rules: KeyRules): MergeOutcome {
  const dropped = new Set<string>();
  const drop = (path: readonly string[], b: Json | undefined, h: Json | undefined) => {
    if (!(h === undefined && emptyish(b))) dropped.add(pointer(path));
  };

  const at = (path: string[], b0: Json | undefined, b: Json | undefined, h: Json | undefined): Json | undefined => {
    if (sameJson(b, b0)) return h; // the box left it alone: the host's version stands
    const place = placeOf(path, rules);
    if (place === 'host') {
      drop(path, b, h);
      return h;
    }
    if (isObject(b)) {
      // A host value that is not an object is replaced only if nothing host-only is inside it.
      if (h !== undefined && !isObject(h) && holdsHostOnly(h, rules)) {
        drop(path, b, h);
        return h;
      }
      const hObj = isObject(h) ? h : {};
      const bObj = isObject(b0) ? b0 : {};
      const out: JsonObject = {};
      const keys = new Set([...Object.keys(hObj), ...Object.keys(b), ...Object.keys(bObj)]);
      for (const k of keys) {
        const v = at([...path, k], own(bObj, k), own(b, k), own(hObj, k));
        if (v !== undefined) setOwn(out, k, v);
      }
      // Above the allowed paths a host scalar becomes an object only if something allowed landed in it.
      if (!isObject(h) && place === 'partial' && Object.keys(out).length === 0) return h;
      return out;
    }
    // The box removed the value or made it a scalar or an array.
    if (isObject(h) && (place === 'partial' || holdsHostOnly(h, rules))) {
      // Applied key by key as a removal, so what the box may not touch stays.
      if (b !== undefined) dropped.add(pointer(path));
      return at(path, b0, {}, h);
    }
    if (place === 'box' && !holdsHostOnly(b, rules) && !holdsHostOnly(h, rules)) return b;
    drop(path, b, h);
    return h;
  };

  const value = at([], base, box, host);
  return { value: isObject(value) ? value : host, dropped: [...dropped].sort() };
}
