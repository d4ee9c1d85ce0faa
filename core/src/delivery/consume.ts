import { InvalidOptionsError } from '../errors.js';
import { MAX_TIMER_MS } from '../options.js';
import { knownOptions } from '../known-options.js';

/** A delivered message as a handler sees it. */
export interface Message<T = unknown> {
  id: string;
  topic: string;
  /** The subscription it was delivered to (`default` for `topic.consume()`). */
  subscription: string;
  /** Its ordering key, when it was sent with one. */
  key?: string;
  payload: T;
  /** 1 on the first delivery, 2 on the first redelivery, ... */
  attempt: number;
  /** When the message was stored (epoch ms). */
  createdAt: number;
  /** The headers it was sent with (`send(payload, { headers })`, or added by a plugin); empty when none. */
  headers: Readonly<Record<string, string>>;
}

/** What a handler can do besides returning (ack) or throwing (nack). */
export interface ConsumeContext<Tx = unknown> {
  /** The transaction the message's consumption commits in (exactly-once), or undefined. */
  em: Tx;
  /** Keep the lease for `ms` more from now; throws `LeaseLostError` if it was already lost. */
  extendLease(ms: number): Promise<void>;
  /** Aborted as soon as the consumer starts stopping: a long handler can return early (and be redelivered) or finish. */
  signal: AbortSignal;
}

/** A message handler: return to ack, throw to nack (redelivered after a backoff). */
export type Handler<T, Tx = unknown> = (message: Message<T>, ctx: ConsumeContext<Tx>) => Promise<void> | void;

/** What a batch handler can do besides returning (every message acked) or throwing (every one nacked). */
export interface BatchContext<Tx = unknown> extends ConsumeContext<Tx> {
  /**
   * Marks one message of the batch failed: it is nacked (redelivered after its backoff, alone or with others, or
   * dead-lettered) while the rest are acked. On exactly-once the rest commit with `em`, so a message marked failed
   * must have written nothing there.
   */
  fail(message: Message<unknown> | string, error?: unknown): void;
}

/**
 * A batch handler: the leased batch as an array (never two messages of one ordering key), in one transaction with
 * their consumption on exactly-once. Return to ack the batch, throw to nack all of it, or `ctx.fail(m)` some.
 */
export type BatchHandler<T, Tx = unknown> = (messages: Message<T>[], ctx: BatchContext<Tx>) => Promise<void> | void;

/** How a consumer pulls and runs messages. */
export interface ConsumeOptions {
  /** Handlers running at once (default 1). */
  concurrency?: number;
  /** Messages leased per round-trip (default 10). */
  batchSize?: number;
  /** How long to wait before polling again when the topic is empty, in ms (default 100). */
  pollMs?: number;
}

/** How long `stop()` waits for handlers in flight by default, in ms (what Kubernetes gives a pod to terminate). */
export const DEFAULT_GRACE_MS = 30_000;

/** How a consumer stops. */
export interface StopOptions {
  /**
   * How long to wait for handlers in flight after aborting `ctx.signal`, in ms (default 30,000). Past it, `stop()`
   * resolves anyway: a handler still running is abandoned, its outcome discarded, and its message stays leased
   * until the lease expires, then is redelivered (never acked, never lost).
   */
  graceMs?: number;
}

/** How a batch consumer pulls: `batchSize` is the most messages one handler call gets. */
export type BatchConsumeOptions = Omit<ConsumeOptions, 'concurrency'>;

const CONSUME_OPTIONS = ['concurrency', 'batchSize', 'pollMs'] as const satisfies ReadonlyArray<keyof ConsumeOptions>;
const BATCH_CONSUME_OPTIONS = ['batchSize', 'pollMs'] as const satisfies ReadonlyArray<keyof BatchConsumeOptions>;

/** The consume options with defaults filled in; throws `InvalidOptionsError` naming a bad one. */
export function resolveConsumeOptions(o: ConsumeOptions, where = 'consume()'): Required<ConsumeOptions> {
  knownOptions(where, o, where === 'consumeBatch()' ? BATCH_CONSUME_OPTIONS : CONSUME_OPTIONS);
  const out = { concurrency: o.concurrency ?? 1, batchSize: o.batchSize ?? 10, pollMs: o.pollMs ?? 100 };
  for (const [k, v] of Object.entries(out)) {
    // pollMs becomes a timer, and Node fires a longer timer than MAX_TIMER_MS after 1 ms (a busy poll).
    const max = k === 'pollMs' ? MAX_TIMER_MS : Infinity;
    if (!Number.isInteger(v) || v < 1 || v > max) {
      throw new InvalidOptionsError(`Consumer option ${k} must be an integer >= 1${max === Infinity ? '' : ` and <= ${max}`}, got ${String(v)}.`);
    }
  }
  return out;
}

/** The grace period of a stop, defaulted; throws `InvalidOptionsError` for a bad one. */
export function resolveGraceMs(o: StopOptions): number {
  knownOptions('stop()', o, ['graceMs']);
  const graceMs = o.graceMs ?? DEFAULT_GRACE_MS;
  if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_TIMER_MS) {
    throw new InvalidOptionsError(`stop({ graceMs }) must be an integer from 0 to ${MAX_TIMER_MS} ms, got ${String(graceMs)}.`);
  }
  return graceMs;
}
