import type { BatchContext, ConsumeContext, Message } from './delivery/consume.js';
import { InvalidOptionsError } from './errors.js';
import type { TidingsEventBus } from './events.js';
import type { Lifecycle } from './lifecycle/names.js';
import type { SendAck } from './delivery/send.js';
import type { StateCounts, StorageAdapter, StoredMessage, SubscriptionCounts, SubscriptionRecord, TopicRecord } from './storage/contract.js';

/** One message of a send as plugins see it, before it is stored: a plugin may add headers. */
export interface OutgoingMessage {
  readonly id: string;
  readonly payload: unknown;
  headers: Record<string, string>;
}

/** A send (one `send`, or one `sendMany` batch) on its way to storage. */
export interface SendContext {
  readonly topic: string;
  readonly lifecycle: Lifecycle;
  readonly messages: readonly OutgoingMessage[];
}

/** One handler run: the message as the handler gets it, and its context. */
export interface HandleContext {
  readonly topic: string;
  /** The subscription the message was delivered to. */
  readonly subscription: string;
  readonly lifecycle: Lifecycle;
  readonly message: Message<unknown>;
  readonly context: ConsumeContext<unknown>;
}

/** One batch handler run: the leased batch as the handler gets it, and its context. */
export interface BatchHandleContext {
  readonly topic: string;
  /** The subscription the batch was delivered to. */
  readonly subscription: string;
  readonly lifecycle: Lifecycle;
  readonly messages: readonly Message<unknown>[];
  readonly context: BatchContext<unknown>;
  /** The ids the handler marked failed (`ctx.fail`), with their errors: complete once `next()` resolved. */
  readonly failed: ReadonlyMap<string, unknown>;
}

/** What a plugin may use of the Tidings instance it is registered with (a `Tidings` is one). */
export interface PluginHost {
  readonly events: TidingsEventBus;
  readonly storage: StorageAdapter<any>;
  counts(topic?: string): Promise<StateCounts>;
  subscriptionCounts(topic?: string): Promise<SubscriptionCounts>;
  topics(): Promise<TopicRecord[]>;
  subscriptions(topic?: string): Promise<SubscriptionRecord[]>;
  hasTopic(topic: string): boolean;
  deadLetters(topic: string, limit?: number, options?: { subscription?: string }): Promise<StoredMessage[]>;
  redrive(topic: string, ids?: string[], options?: { subscription?: string }): Promise<number>;
}

/**
 * Something that watches or wraps delivery: metrics, traces, validation, a dashboard's live feed. Every member but
 * `name` is optional; `send`, `handle` and `handleBatch` wrap the step (call `next()` to go on, throw to refuse), like
 * middleware.
 */
export interface TidingsPlugin {
  readonly name: string;
  /** Once, when the instance is created (storage open): subscribe to `tidings.events`, start what the plugin runs. */
  setup?(tidings: PluginHost): void | Promise<void>;
  /** Around every send or `sendMany` batch: may add headers; a throw refuses the whole batch, nothing stored. */
  send?(ctx: SendContext, next: () => Promise<SendAck[]>): Promise<SendAck[]>;
  /** Around every handler run: a throw is the handler's failure (nacked as its lifecycle says). */
  handle?(ctx: HandleContext, next: () => Promise<void>): Promise<void>;
  /** Around every batch handler run: a throw is the batch handler's failure (every message of it, as its lifecycle says). */
  handleBatch?(ctx: BatchHandleContext, next: () => Promise<void>): Promise<void>;
  /** On `tidings.close()`, after every consumer stopped. */
  close?(): void | Promise<void>;
}

/** A step with its plugins' wrappers around it, nested in registration order (the first plugin is outermost). */
export type Wrapped<C, R> = (ctx: C, last: () => Promise<R>) => Promise<R>;

/** The plugins' `send`, `handle` and `handleBatch` wrappers, composed once; undefined where no plugin wraps, so that path costs nothing. */
export interface PluginChain {
  readonly send?: Wrapped<SendContext, SendAck[]>;
  readonly handle?: Wrapped<HandleContext, void>;
  readonly handleBatch?: Wrapped<BatchHandleContext, void>;
}

function compose<C, R>(hooks: Array<(ctx: C, next: () => Promise<R>) => Promise<R>>): Wrapped<C, R> | undefined {
  if (hooks.length === 0) return undefined;
  return (ctx, last) => {
    const at = (i: number): Promise<R> => (i === hooks.length ? last() : hooks[i]!(ctx, () => at(i + 1)));
    return at(0);
  };
}

/** Checks each plugin's shape (a clear error now beats a TypeError mid-delivery) and composes their wrappers. */
export function pluginChain(plugins: readonly TidingsPlugin[]): PluginChain {
  for (const [i, p] of plugins.entries()) {
    if (typeof p !== 'object' || p === null || typeof p.name !== 'string' || p.name === '') {
      throw new InvalidOptionsError(
        `plugins[${i}] must be an object with a name, e.g. { name: 'audit', handle: async (ctx, next) => next() }, got ${p === null ? 'null' : typeof p}.`,
      );
    }
    for (const member of ['setup', 'send', 'handle', 'handleBatch', 'close'] as const) {
      if (p[member] !== undefined && typeof p[member] !== 'function') {
        throw new InvalidOptionsError(`Plugin "${p.name}": ${member} must be a function, got ${typeof p[member]}.`);
      }
    }
  }
  return {
    send: compose(plugins.flatMap((p) => (p.send ? [p.send.bind(p)] : []))),
    handle: compose(plugins.flatMap((p) => (p.handle ? [p.handle.bind(p)] : []))),
    handleBatch: compose(plugins.flatMap((p) => (p.handleBatch ? [p.handleBatch.bind(p)] : []))),
  };
}
