import { randomFillSync, randomUUID } from 'node:crypto';

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

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/**
 * Time-ordered UUIDs (version 7, RFC 9562): the millisecond, a counter within it, then 62 random bits; the
 * default. Ids made close in time sit close in every index that holds them, so a batch's rows touch a few index pages
 * where random ids touch about one page each: with 20,000 messages waiting in a SQLite file, random ids made each
 * commit about three times slower.
 */
export function timeOrderedIds(now: () => number = Date.now): IdGenerator {
  let lastMs = -1;
  let counter = 0;
  const pool = Buffer.alloc(8 * 512);
  let at = pool.length;
  return {
    next() {
      let ms = now();
      if (ms > lastMs) {
        lastMs = ms;
        counter = 0;
      } else if (++counter > 0xfff) {
        // 4,096 ids in one millisecond: borrow the next one, so ids stay in the order they were made.
        ms = ++lastMs;
        counter = 0;
      } else ms = lastMs;
      if (at === pool.length) {
        randomFillSync(pool);
        at = 0;
      }
      const k = at;
      at += 8;
      const t = ms.toString(16).padStart(12, '0');
      return `${t.slice(0, 8)}-${t.slice(8)}-7${counter.toString(16).padStart(3, '0')}-${HEX[0x80 | (pool[k]! & 0x3f)]}${HEX[pool[k + 1]!]}-${HEX[pool[k + 2]!]}${HEX[pool[k + 3]!]}${HEX[pool[k + 4]!]}${HEX[pool[k + 5]!]}${HEX[pool[k + 6]!]}${HEX[pool[k + 7]!]}`;
    },
  };
}

/** Where Tidings writes what it does not throw. */
export interface Logger {
  debug(msg: string, data?: object): void;
  warn(msg: string, data?: object): void;
  error(msg: string, data?: object): void;
}

/** A logger that writes nothing. */
export const silentLogger: Logger = { debug() {}, warn() {}, error() {} };

const line = (level: string, msg: string, data?: object) => process.stderr.write(`[tidings] ${level}: ${msg}${data ? ` ${JSON.stringify(data)}` : ''}\n`);

/** The default: warnings and errors on stderr, one line each with its data as JSON; debug is dropped. */
export const stderrLogger: Logger = {
  debug() {},
  warn: (msg, data) => line('warn', msg, data),
  error: (msg, data) => line('error', msg, data),
};

/** Longest error text kept with a message. */
const MAX_ERROR_CHARS = 4_000;

/** An error as it is kept with a failed message: its stack (which starts with name and message), or its text. */
export function describeError(error: unknown): string {
  const text =
    error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error));
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text;
}

/** The first line of an error's description, for a one-line log. */
export function firstLine(text: string): string {
  return text.split('\n', 1)[0]!;
}
