// Percentiles and medians of measured samples.

/** Latency percentiles in ms. */
export interface Latency {
  p50: number;
  p99: number;
  p999: number;
}

/** A number rounded to `digits` decimals (figures are printed and stored this way). */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** The value at quantile `q` (0..1) of an ascending sample, nearest rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) throw new Error('quantile of an empty sample');
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The p50, p99 and p99.9 of a sample of ms, rounded to 0.01 ms. */
export function percentiles(samples: ArrayLike<number>): Latency {
  const sorted = Float64Array.from(samples).sort();
  return { p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)), p999: round(quantile(sorted, 0.999)) };
}

/** The median of a sample (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of an empty sample');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Latency percentiles of several rounds: the median of each percentile. */
export function medianLatency(rounds: readonly Latency[]): Latency {
  return { p50: round(median(rounds.map((l) => l.p50))), p99: round(median(rounds.map((l) => l.p99))), p999: round(median(rounds.map((l) => l.p999))) };
}
