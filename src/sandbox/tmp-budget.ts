// The size of the one tmpfs that /tmp, HOME and /dev/shm share (--tmp-size,
// [sandbox.limits] tmp_size). Checked strictly before the kernel sees it: the
// kernel reads size=0 as "no limit" (Documentation/filesystems/tmpfs.rst),
// parses digits with base 0 (010m is 8 MiB, octal) and multiplies in 64 bits
// without an overflow check, so a careless value could lift the limit.
import { LaunchError } from '../core/errors.js';

const UNIT: Record<string, bigint> = { '': 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n };
/** Far above any machine's memory and far below where the kernel's arithmetic wraps. */
const MAX_BYTES = 1n << 53n;

/** Returns size unchanged when it is a positive size tmpfs reads as meant; throws a LaunchError otherwise. */
export function checkTmpSize(size: string): string {
  const bad = (why: string) => new LaunchError(`--tmp-size (tmp_size) ${JSON.stringify(size)}: ${why}`);
  const m = /^([0-9]+)([kmg%]?)$/.exec(size);
  if (!m) throw bad('expected a size like 2g, 512m or 50% (digits, then k, m, g or %)');
  const [, digits, unit] = m as unknown as [string, string, string];
  if (/^0+$/.test(digits)) throw bad('expected more than 0: tmpfs reads a size of 0 as no limit at all');
  if (digits.startsWith('0')) throw bad(`expected no leading zero: tmpfs would read ${digits} as an octal number; write ${digits.replace(/^0+/, '')}${unit}`);
  if (unit === '%') {
    if (BigInt(digits) > 100n) throw bad('expected at most 100%: the budget is a share of the host memory');
  } else if (BigInt(digits) * UNIT[unit]! > MAX_BYTES) {
    throw bad('expected at most 8388608g');
  }
  return size;
}
