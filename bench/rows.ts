// What a scenario measures, and the row it becomes in the output and in `--json`.
import type { Latency } from './stats.js';

/** Whose code a row measures (BullMQ's on Redis or on its PostgreSQL backend). */
export type System = 'tidings' | 'raw' | 'bullmq' | 'bullmq-postgres' | 'graphile-worker' | 'pg-boss';

/** What one run of a scenario measured. */
export interface Measured {
  /** Messages per second: sent, or sent and handled end to end, as the scenario says. */
  messagesPerSecond: number;
  /** Messages the run sent and saw handled (or stored, for send-only scenarios); all of them, or the run failed. */
  messages: number;
  /** p50, p99 and p99.9 in ms, where the scenario measures a latency. */
  latencyMs?: Latency;
  /** Sends per second a fixed-rate scenario is scheduled at (its messages/s is that rate, not a throughput). */
  scheduledPerSecond?: number;
  /** Handler runs beyond the first for a message (redeliveries), where a consumer runs. */
  duplicates?: number;
  /** What Tidings logged during the run (warnings and errors, by message) and how often; absent when nothing. */
  logged?: Record<string, number>;
  /** Peak resident set size in MB: of the consumer process at the large backlog, in the backlog scenario. */
  rssMb?: number;
  /** The backlog scenario's other figures: at the small and the large backlog, and the producer's peak RSS. */
  backlog?: BacklogFigures;
  /** Scale-out: how many consumer processes, and what their leases came to, summed. */
  leases?: { processes: number; leases: number; empty: number; short: number; busyRetries: number };
}

/** A consumer process on a small and on a large backlog (each a fresh process), and the process that stored it. */
export interface BacklogFigures {
  /** Messages waiting when each consumer started. */
  sizes: [number, number];
  /** Median ms to lease a full batch of 100, at each size. */
  leaseMs: [number, number];
  /** leaseMs at the large backlog ÷ at the small one. */
  leaseRatio: number;
  /** Peak RSS in MB of the consumer process at each size. */
  consumerRssMb: [number, number];
  /** Peak RSS in MB of the process storing the large backlog. */
  producerRssMb: number;
}

/** One line of the results: a scenario's figures against its baseline. */
export interface Row extends Measured {
  name: string;
  system: System;
  /** Name of the row it is compared with (or the fixed schedule it follows), null for a baseline itself. */
  baseline: string | null;
  /** messages/s ÷ the baseline's messages/s; null for a baseline itself. */
  ratio: number | null;
  /** messages/s of each round, when the row is the median of several. */
  rounds?: number[];
}

/** A scenario that lost messages, stalled or failed: it has no figure, and the run exits non-zero. */
export class BenchFailure extends Error {
  override name = 'BenchFailure';
}

/** A scenario that did not run to the end, as `--json` lists it. */
export interface Failure {
  name: string;
  error: string;
}

/** What `npm run bench -- --json` and `npm run bench:peers -- --json` print. */
export interface Results {
  kind: 'bench' | 'peers';
  /** ISO date and time the run ended. */
  date: string;
  machine: Machine;
  quick: boolean;
  rows: Row[];
  failures: Failure[];
  /** Each target with its figure (peers only). */
  targets?: TargetResult[];
  /** Per-message cost of single steps in µs (bench only, when run). */
  costsMicroseconds?: Record<string, number>;
}

/** Where the figures come from. */
export interface Machine {
  cpus: number;
  cpuModel: string;
  node: string;
  platform: string;
  memoryGb: number;
  /** The device and file system of the temp folder, where the files and the embedded PostgreSQL live. */
  disk: string;
  /** The 1-minute load average at the start and at the end of the run: peers slow down more than Tidings under load. */
  load?: [number, number];
}

/** A target's verdict: its figure and whether it is met (undefined when the rows it needs are missing). */
export interface TargetResult {
  target: string;
  figure: string;
  met: boolean | undefined;
}
