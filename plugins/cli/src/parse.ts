import { InvalidOptionsError } from '@tidings/core';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Milliseconds from `500`, `500ms`, `30s`, `30m`, `12h`, `7d` or `2w`. */
export function parseDuration(option: string, value: string): number {
  const m = /^\s*(\d+)\s*(ms|s|m|h|d|w)?\s*$/i.exec(String(value));
  const ms = m ? Number(m[1]) * UNITS[(m[2] ?? 'ms').toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new InvalidOptionsError(`${option} takes milliseconds or a whole number with a unit (30m, 12h, 7d, 2w), got ${JSON.stringify(value)}.`);
  }
  return ms;
}

/** A whole number from `min` up (to `max` if given), e.g. `--limit`; throws `InvalidOptionsError` naming the option. */
export function parseInteger(option: string, value: string | number, min = 1, max?: number): number {
  const n = typeof value === 'number' ? value : /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max)) {
    const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
    throw new InvalidOptionsError(`${option} must be a whole number ${range}, got ${JSON.stringify(value)}.`);
  }
  return n;
}
