// What every scenario is given: how many messages to use, where to put files, the shared PostgreSQL server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresServer } from './servers.js';

/** Message counts of a run: the full ones, or small ones for a smoke test (`--quick`). */
export interface Counts {
  /** Messages per end-to-end batch scenario. */
  batch: number;
  /** Sends in the one-awaited-send-at-a-time scenarios. */
  single: number;
  /** Sends in the concurrent-senders scenarios, over all callers. */
  concurrent: number;
  /** Callers of the concurrent-senders scenarios. */
  callers: number;
  /** Sends per second and seconds of the fixed-rate scenarios. */
  rate: number;
  rateSeconds: number;
  /** The small and the large backlog, and how many messages are consumed at each to time the leases. */
  backlogs: [number, number];
  leaseSample: number;
  /** Rows of the raw bulk-insert baseline. */
  bulk: number;
}

/** Counts for `--quick` or for a full run; `messages` replaces the batch count. */
export function countsFor(quick: boolean, messages?: number): Counts {
  const counts: Counts = quick
    ? { batch: 1_000, single: 100, concurrent: 500, callers: 50, rate: 1_000, rateSeconds: 0.5, backlogs: [1_000, 20_000], leaseSample: 500, bulk: 20_000 }
    : {
        batch: 20_000,
        single: 1_000,
        concurrent: 10_000,
        callers: 50,
        rate: 1_000,
        rateSeconds: 3,
        backlogs: [10_000, 1_000_000],
        leaseSample: 3_000,
        bulk: 200_000,
      };
  return messages ? { ...counts, batch: messages } : counts;
}

/** A run's shared resources; `close()` stops the server and removes the files. */
export class BenchContext {
  readonly dir = mkdtempSync(join(tmpdir(), 'tidings-bench-'));
  readonly postgres = new PostgresServer();
  private files = 0;

  constructor(
    readonly counts: Counts,
    readonly quick: boolean,
  ) {}

  /** A path for a new SQLite file in the run's folder. */
  file(label: string): string {
    return join(this.dir, `${label.replace(/\W+/g, '-')}-${++this.files}.db`);
  }

  async close(): Promise<void> {
    try {
      await this.postgres.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
