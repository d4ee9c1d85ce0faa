// The messages every scenario sends, and the tally of those handled: each counted once, a stall or a loss a failure.
import { BenchFailure } from './rows.js';

/** What every scenario sends: its index, when it was sent (or due) and padding to about 256 bytes of JSON. */
export interface BenchPayload {
  i: number;
  /** Epoch ms with sub-ms precision (`epochMs()`), comparable across processes on one machine. */
  at: number;
  body: string;
}

const BODY = 'x'.repeat(256 - JSON.stringify({ i: 10_000, at: 1.7e12 + 0.123, body: '' }).length);

/** Epoch ms with the resolution of `performance.now()`: the clock sends and handlers are timed with. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Message `i`, stamped now (or at `at`). */
export function payload(i: number, at = epochMs()): BenchPayload {
  return { i, at, body: BODY };
}

/** Messages `from`, `from + 1`, … (`count` of them), stamped now. */
export function payloads(from: number, count: number): BenchPayload[] {
  const at = epochMs();
  return Array.from({ length: count }, (_, k) => payload(from + k, at));
}

/** A producer id for message `i`, for end-to-end exactly-once (the broker deduplicates by it). */
export const messageId = (i: number) => `m-${i}`;

/** How long a run may go without a new message handled before it counts as stalled (and fails). */
export const STALL_MS = 60_000;

/**
 * Which of `expected` messages were handled: each index counted once (further runs are duplicates), the time of
 * the last new one, and optionally each first run's latency (handler start minus the payload's `at`).
 */
export class Tally {
  handled = 0;
  duplicates = 0;
  /** `epochMs()` when the last new message was handled. */
  lastAt = 0;
  readonly latencies: number[] = [];
  private readonly seen: Uint8Array;
  private complete!: () => void;
  private readonly completed = new Promise<void>((resolve) => (this.complete = resolve));

  constructor(
    readonly expected: number,
    private readonly timed = false,
  ) {
    this.seen = new Uint8Array(expected);
    if (expected === 0) this.complete();
  }

  /** Records a handler run for `p`. */
  mark(p: BenchPayload, at = epochMs()): void {
    if (!Number.isInteger(p.i) || p.i < 0 || p.i >= this.expected) throw new BenchFailure(`handled a message that was never sent (index ${p.i})`);
    if (this.seen[p.i]) {
      this.duplicates++;
      return;
    }
    this.seen[p.i] = 1;
    this.handled++;
    this.lastAt = at;
    if (this.timed) this.latencies.push(at - p.at);
    if (this.handled === this.expected) this.complete();
  }

  /** Records runs reported by another process as flat `[index, latency ms, epoch ms handled, …]` triples. */
  markReported(triples: readonly number[]): void {
    for (let k = 0; k + 2 < triples.length; k += 3) this.mark({ i: triples[k]!, at: triples[k + 2]! - triples[k + 1]!, body: '' }, triples[k + 2]!);
  }

  /** Resolves once every message is handled; rejects with a `BenchFailure` once none has been for `stallMs`. */
  async finished(label: string, stallMs = STALL_MS, failed?: () => Error | undefined): Promise<void> {
    let last = this.handled;
    let since = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        const error = failed?.();
        if (error) reject(error);
        if (this.handled !== last) [last, since] = [this.handled, Date.now()];
        else if (Date.now() - since >= stallMs) {
          reject(new BenchFailure(`${label}: ${this.handled} of ${this.expected} messages handled, none in the last ${stallMs / 1000} s`));
        }
      }, 250);
    });
    try {
      await Promise.race([this.completed, stalled]);
    } finally {
      clearInterval(timer);
    }
  }
}
