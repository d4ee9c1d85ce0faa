import { InvalidOptionsError } from './errors.js';

/** Edit distance between two short names (Levenshtein), for "did you mean". */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** The known name a mistyped one most likely meant, if any is close (same letters in another case, or a few edits away). */
function closest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const same = known.find((k) => k.toLowerCase() === lower);
  if (same) return same;
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const k of known) {
    const d = distance(lower, k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

/**
 * Refuses an options object holding a key nothing reads, naming the option it most likely meant: a typo such as
 * `maxDelivery` must fail where it is written, not be ignored until production. `where` names the call.
 */
export function knownOptions(where: string, given: object, known: readonly string[]): void {
  for (const key in given) {
    if (known.includes(key)) continue;
    const guess = closest(key, known);
    throw new InvalidOptionsError(`${where} has no option "${key}"${guess ? `: did you mean "${guess}"?` : '.'} Its options are ${known.join(', ')}.`);
  }
}
