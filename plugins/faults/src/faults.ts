import { InvalidOptionsError, MAX_TIMER_MS, StorageError, TidingsError, type Lifecycle } from '@tidings/core';
import {
  decorateStorage,
  lifecyclePlans,
  type LeaseRequest,
  type SettleRequest,
  type StorageAdapter,
  type StoredMessage,
  type StoreRequest,
  type StoreResult,
  type TopicRecord,
} from '@tidings/core/adapter';
import { substream } from './random.js';

/** Every crash point, in the order a message meets them. */
export const CRASH_POINTS = ['after-store-before-ack', 'after-lease-before-handler', 'after-handler-before-ack'] as const;
/** A named instant at which an injected crash can stop the broker or a consumer. */
export type CrashPoint = (typeof CRASH_POINTS)[number];

/** An injected crash, thrown by an `onCrash` that simulates a crash inside one process instead of killing it. */
export class CrashError extends TidingsError {
  constructor(
    readonly point: CrashPoint,
    /** Broker ids of the messages the crash hit (empty when the point does not know them). */
    readonly ids: readonly string[] = [],
  ) {
    super('CRASHED', `Injected crash at ${point}${ids.length > 0 ? ` (messages ${ids.join(', ')})` : ''}.`);
  }
}

/** An injected lost ack: the storage did the work, and the caller never heard. Retryable, as a real lost answer is. */
function lostAckError(message: string): StorageError {
  return new StorageError(message, { code: 'ACK_LOST', retryable: true });
}

/** What to inject and how often; every rate is a probability per call in [0, 1]. */
export interface FaultOptions {
  /** Seeds every random choice, so a run replays with the seed it printed. */
  seed: number;
  /** `store` commits, then fails with `ACK_LOST`: the producer never hears and retries. */
  lostAckRate?: number;
  /** A transaction that consumed messages commits, then fails with `ACK_LOST`: the consumer never hears that it did. */
  lostConsumeAckRate?: number;
  /** `store` is called twice for the batch, as a network that repeats a request would. */
  duplicateSendRate?: number;
  /** A storage call waits a random time first. */
  delayRate?: number;
  /** Bounds of an injected delay in ms, inclusive (default [1, 20]). */
  delayMs?: [number, number];
  /** Rate of a crash at each point. */
  crash?: Partial<Record<CrashPoint, number>>;
  /** Called at a crash; the default kills this process with SIGKILL. If it returns, the call fails with `CrashError` anyway. */
  onCrash?: (point: CrashPoint, ids: readonly string[]) => void;
}

/** How many faults a wrapper has injected so far. */
export interface FaultCounts {
  lostAcks: number;
  lostConsumeAcks: number;
  duplicateSends: number;
  delays: number;
  crashes: Record<CrashPoint, number>;
}

/** A storage adapter with faults injected, with what it injected and the seed to replay it. */
export type FaultyStorage<Tx> = StorageAdapter<Tx> & { readonly faults: FaultCounts; readonly seed: number };

const OPTION_KEYS = new Set(['seed', 'lostAckRate', 'lostConsumeAckRate', 'duplicateSendRate', 'delayRate', 'delayMs', 'crash', 'onCrash']);
const DELAYED_OPERATIONS = ['store', 'lease', 'settle', 'release', 'expire', 'transaction'] as const;

function checkRate(name: string, v: unknown): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new InvalidOptionsError(`Fault option ${name} must be a probability between 0 and 1 (e.g. 0.1 for one call in ten), got ${String(v)}.`);
  }
  return v;
}

function validate(o: FaultOptions): Required<Omit<FaultOptions, 'crash'>> & { crash: Record<CrashPoint, number> } {
  if (typeof o !== 'object' || o === null)
    throw new InvalidOptionsError(`withFaults needs an options object with at least a seed, e.g. { seed: 42, lostAckRate: 0.1 }.`);
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.has(key)) throw new InvalidOptionsError(`Unknown fault option "${key}". Known options: ${[...OPTION_KEYS].join(', ')}.`);
  }
  if (typeof o.seed !== 'number' || !Number.isSafeInteger(o.seed)) {
    throw new InvalidOptionsError(`Fault option seed must be an integer (print it with the run so a failure replays), got ${String(o.seed)}.`);
  }
  const delayMs = o.delayMs ?? [1, 20];
  if (!Array.isArray(delayMs) || delayMs.length !== 2 || !delayMs.every((d) => Number.isInteger(d) && d >= 0 && d <= MAX_TIMER_MS) || delayMs[0] > delayMs[1]) {
    throw new InvalidOptionsError(`Fault option delayMs must be [min, max]: integers with 0 <= min <= max (e.g. [1, 20]), got ${JSON.stringify(o.delayMs)}.`);
  }
  if (o.crash !== undefined && (typeof o.crash !== 'object' || o.crash === null)) {
    throw new InvalidOptionsError(`Fault option crash must map crash points to rates, e.g. { 'after-store-before-ack': 0.1 }, got ${String(o.crash)}.`);
  }
  const crash = Object.fromEntries(CRASH_POINTS.map((p) => [p, 0])) as Record<CrashPoint, number>;
  for (const [point, rate] of Object.entries(o.crash ?? {})) {
    if (!(CRASH_POINTS as readonly string[]).includes(point)) {
      throw new InvalidOptionsError(`Unknown crash point "${point}". Crash points: ${CRASH_POINTS.join(', ')}.`);
    }
    crash[point as CrashPoint] = checkRate(`crash['${point}']`, rate);
  }
  if (o.onCrash !== undefined && typeof o.onCrash !== 'function') {
    throw new InvalidOptionsError(`Fault option onCrash must be a function (point, ids) => void, got ${typeof o.onCrash}.`);
  }
  return {
    seed: o.seed,
    lostAckRate: checkRate('lostAckRate', o.lostAckRate),
    lostConsumeAckRate: checkRate('lostConsumeAckRate', o.lostConsumeAckRate),
    duplicateSendRate: checkRate('duplicateSendRate', o.duplicateSendRate),
    delayRate: checkRate('delayRate', o.delayRate),
    delayMs,
    crash,
    onCrash: o.onCrash ?? killProcess,
  };
}

/** A real crash: no cleanup, no flushed buffers, as a power cut or an OOM kill would leave things. */
function killProcess(): void {
  process.kill(process.pid, 'SIGKILL');
}

/**
 * Wraps a storage adapter so it injects seeded faults: lost acks, duplicated sends, delays and crashes at
 * named points. Every other member, optional ones included, is the wrapped adapter's own.
 */
export function withFaults<Tx>(storage: StorageAdapter<Tx>, options: FaultOptions): FaultyStorage<Tx> {
  if (typeof storage !== 'object' || storage === null || typeof storage.store !== 'function') {
    throw new InvalidOptionsError(`withFaults needs a storage adapter to wrap (e.g. memoryStorage()), got ${String(storage)}.`);
  }
  const o = validate(options);
  const inner = storage;
  const faults: FaultCounts = {
    lostAcks: 0,
    lostConsumeAcks: 0,
    duplicateSends: 0,
    delays: 0,
    crashes: Object.fromEntries(CRASH_POINTS.map((p) => [p, 0])) as Record<CrashPoint, number>,
  };
  // One stream per decision, so e.g. the number of empty lease polls (timing) cannot shift which sends lose their ack.
  const lostAck = substream(o.seed, 0);
  const duplicate = substream(o.seed, 1);
  const crashRoll = Object.fromEntries(CRASH_POINTS.map((p, i) => [p, substream(o.seed, 2 + i)])) as Record<CrashPoint, () => number>;
  const lostConsumeAck = substream(o.seed, 20);
  const delayRoll = Object.fromEntries(DELAYED_OPERATIONS.map((op, i) => [op, substream(o.seed, 10 + i)])) as Record<
    (typeof DELAYED_OPERATIONS)[number],
    () => number
  >;
  // Ids settled out of `leased` inside each open transaction, so a crash before its commit can name them.
  const settledIn = new Map<unknown, string[]>();

  const delay = async (op: (typeof DELAYED_OPERATIONS)[number]): Promise<void> => {
    const roll = delayRoll[op];
    const hit = roll() < o.delayRate;
    const [min, max] = o.delayMs;
    const ms = min + Math.floor(roll() * (max - min + 1));
    if (!hit) return;
    faults.delays++;
    await new Promise((r) => setTimeout(r, ms));
  };

  const crash = (point: CrashPoint, ids: readonly string[]): void => {
    if (!(crashRoll[point]() < o.crash[point])) return;
    faults.crashes[point]++;
    o.onCrash(point, ids);
    // A crash never returns: an onCrash that only records must still stop the operation here.
    throw new CrashError(point, ids);
  };

  // Each declared topic's lifecycle, as it passes through: a repeated send depends on it.
  const lifecycles = new Map<string, Lifecycle>();
  // Where the consumer does not deduplicate, the repeated request must carry new ids, or the adapter's per-topic id
  // uniqueness would hide the duplicate; exactly-once topics get the same ids again, as a producer's retry sends them.
  const copyOf = (req: StoreRequest): StoreRequest =>
    lifecyclePlans[lifecycles.get(req.topic) ?? 'at-least-once'].idempotent
      ? req
      : { ...req, messages: req.messages.map((m) => ({ ...m, id: `${m.id}~dup${faults.duplicateSends}` })) };

  const overrides: Partial<StorageAdapter<Tx>> & { faults: FaultCounts; seed: number } = {
    faults,
    seed: o.seed,

    async store(req: StoreRequest, tx?: Tx): Promise<StoreResult[]> {
      await delay('store');
      // Every decision is drawn up front, whatever the outcome, so the streams advance once per call.
      const repeat = duplicate() < o.duplicateSendRate;
      const loseAck = lostAck() < o.lostAckRate;
      let results = await inner.store(req, tx);
      if (repeat) {
        faults.duplicateSends++;
        results = await inner.store(copyOf(req), tx);
      }
      crash(
        'after-store-before-ack',
        results.map((r) => r.id),
      );
      // Inside the caller's transaction nothing is committed yet, so there is no ack to lose.
      if (loseAck && tx === undefined) {
        faults.lostAcks++;
        throw lostAckError(`Injected fault (seed ${o.seed}): ${req.messages.length} message(s) were stored on topic "${req.topic}" but the ack was lost.`);
      }
      return results;
    },

    async lease(req: LeaseRequest): Promise<StoredMessage[]> {
      await delay('lease');
      const batch = await inner.lease(req);
      // Only non-empty batches roll: empty polls depend on timing and would make the run unreplayable.
      if (batch.length > 0)
        crash(
          'after-lease-before-handler',
          batch.map((m) => m.id),
        );
      return batch;
    },

    async settle(req: SettleRequest, tx?: Tx): Promise<string[]> {
      await delay('settle');
      if (req.items.length > 0) {
        const ids = req.items.map((i) => i.id);
        if (req.from === 'leased' && tx !== undefined) settledIn.get(tx)?.push(...ids);
        // Inside a transaction the crash comes at its commit instead (see transaction), after the handler's own writes.
        else if (req.from === 'leased') crash('after-handler-before-ack', ids);
      }
      return inner.settle(req, tx);
    },

    async release(req, tx) {
      await delay('release');
      return inner.release(req, tx);
    },

    async expire(req, tx) {
      await delay('expire');
      return inner.expire(req, tx);
    },

    async declareTopic(topic: TopicRecord): Promise<TopicRecord> {
      const kept = await inner.declareTopic(topic);
      lifecycles.set(kept.name, kept.lifecycle);
      return kept;
    },

    async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      await delay('transaction');
      const ids: string[] = [];
      const result = await inner.transaction(async (tx) => {
        settledIn.set(tx, ids);
        try {
          const result = await fn(tx);
          // The transactional inbox: a crash here rolls back the handler's writes, the `consumed` state and the idempotency record together.
          if (ids.length > 0) crash('after-handler-before-ack', ids);
          return result;
        } finally {
          settledIn.delete(tx);
        }
      });
      // Rolled only for commits that consumed something, so a run replays whatever else its transactions did.
      if (ids.length > 0 && lostConsumeAck() < o.lostConsumeAckRate) {
        faults.lostConsumeAcks++;
        throw lostAckError(`Injected fault (seed ${o.seed}): the transaction consuming ${ids.join(', ')} committed but its ack was lost.`);
      }
      return result;
    },
  };

  return decorateStorage(inner, overrides);
}
