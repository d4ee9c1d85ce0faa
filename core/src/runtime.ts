import { randomUUID } from 'node:crypto';

/** Time as Tidings sees it; inject a manual clock to test leases and backoff without waiting. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told; for tests of leases, delays and dedup windows. */
export class ManualClock implements Clock {
  constructor(private time = 0) {}
  /** Current time in epoch ms. */
  now(): number {
    return this.time;
  }
  /** Move time forward by `ms`. */
  advance(ms: number): void {
    this.time += ms;
  }
}

/** Makes message ids and lease tokens. */
export interface IdGenerator {
  /** A new unique id. */
  next(): string;
}

/** Random UUIDs (v4). */
export const uuidGenerator: IdGenerator = { next: () => randomUUID() };

/** Where Tidings writes what it does not throw. */
export interface Logger {
  debug(msg: string, data?: object): void;
  warn(msg: string, data?: object): void;
  error(msg: string, data?: object): void;
}

/** A logger that writes nothing. */
export const silentLogger: Logger = { debug() {}, warn() {}, error() {} };
