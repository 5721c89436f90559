// "Did you mean" for unknown names: the closest known one by edit distance.
export function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** How far a name may be from a known one to be suggested: a third of the known name, at least 2. */
const within = (known: string, d: number) => d <= Math.max(2, Math.floor(known.length / 3));

export function nearest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = levenshtein(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best !== undefined && within(best, bestD) ? best : undefined;
}

/** Up to max known names within the threshold, closest first (ties in the order given). */
export function closest(name: string, known: readonly string[], max = 3): string[] {
  return known
    .map((k, i) => ({ k, i, d: levenshtein(name.toLowerCase(), k.toLowerCase()) }))
    .filter(({ k, d }) => within(k, d))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .slice(0, max)
    .map(({ k }) => k);
}

export function didYouMean(name: string, known: readonly string[]): string {
  const n = nearest(name, known);
  return n ? `did you mean "${n}"?` : `expected one of: ${known.join(', ')}`;
}
