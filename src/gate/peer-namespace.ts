// Whether a peer process runs in a namespace nested below the gate's: a
// sandbox (or any container) a process of an operator's uid started. Such a
// process shares the operator's uid but not the operator's authority: it is
// never an operator, whatever socket it reaches. Read from /proc files every
// user may read (proc(5): NSpid in /proc/PID/status, /proc/PID/uid_map), so
// a gate that does not run as root can tell too.
import { readFileSync } from 'node:fs';

/** Why the process is not in the gate's own user and PID namespaces; null when it is. */
export function nestedNamespace(pid: number): string | null {
  let status: string;
  let uidMap: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
    uidMap = readFileSync(`/proc/${pid}/uid_map`, 'utf8');
  } catch (e) {
    // Gone already, or /proc not mounted: nothing shows it is not boxed.
    return `its namespaces cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  const depth = (s: string) => /^NSpid:\s*(.*)$/m.exec(s)?.[1]?.trim().split(/\s+/).length;
  const mine = depth(readFileSync('/proc/self/status', 'utf8'));
  const theirs = depth(status);
  if (mine === undefined || theirs === undefined) return 'the kernel does not report its PID namespace (no NSpid in /proc/PID/status)';
  // The peer's pid as seen from /proc's namespace, then from each nested one.
  if (theirs !== mine) return `it runs in a PID namespace ${theirs > mine ? 'nested below' : 'other than'} the gate's`;
  if (uidMap !== readFileSync('/proc/self/uid_map', 'utf8')) return "it runs in a user namespace other than the gate's";
  return null;
}
