import type { TidingsEventBus } from '../events.js';
import type { IdempotencyStore } from '../storage/idempotency.js';
import type { ResolvedTopicOptions } from '../options.js';
import type { Clock, IdGenerator, Logger } from '../services.js';
import { TopicConflictError } from '../errors.js';
import type { StorageAdapter, TopicRecord } from '../storage/contract.js';
import type { LifecyclePlan } from '../lifecycle/plan.js';
import type { PluginChain } from '../plugin.js';
import type { TransitionStep } from '../lifecycle/table.js';

/** What producer, consumers and the instance share for one topic. */
export interface TopicRuntime {
  readonly name: string;
  readonly options: ResolvedTopicOptions;
  /** What delivery does for the topic's lifecycle, read from its machine. */
  readonly plan: LifecyclePlan;
  readonly storage: StorageAdapter<unknown>;
  readonly idempotency: IdempotencyStore<unknown>;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly logger: Logger;
  readonly events: TidingsEventBus;
  /** The topic dead letters are copied to. */
  readonly deadLetter?: TopicRuntime;
  /** This process's running consumers of the topic. */
  readonly consumers: Set<{ wake(): void; stop(options?: { graceMs?: number }): Promise<void> }>;
  /** The registered plugins' `send` and `handle` wrappers (undefined where none wraps). */
  readonly plugins: PluginChain;
  /** The topic's one sweeper of expired leases in this process, shared by its consumers. */
  readonly sweeper: { sweep(): Promise<void> };
  /**
   * The topic's record in storage: `declared` settles once it is written, and rejects with `TopicConflictError` if
   * storage records another lifecycle; `error` is that rejection, once it happened, for callers that cannot wait.
   */
  readonly declaration: TopicDeclaration;
  /** Registers work that `close()` must wait for. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Throws `ClosedError` once the instance is closing. */
  assertOpen(): void;
}

/** A topic's record in storage, being written or written. */
export interface TopicDeclaration {
  readonly declared: Promise<void>;
  error?: unknown;
}

/** Emits one `transition` event per step, and only when someone listens. */
export function emitSteps(rt: Pick<TopicRuntime, 'name' | 'options' | 'plan' | 'events' | 'clock'>, id: string, steps: readonly TransitionStep[]): void {
  if (rt.events.listenerCount('transition') === 0) return;
  const at = rt.clock.now();
  for (const s of steps) {
    rt.events.emit('transition', {
      id,
      topic: rt.name,
      semantic: rt.options.semantic,
      lifecycle: rt.plan.lifecycle,
      from: s.from,
      to: s.to,
      event: s.event,
      at,
    });
  }
}

/**
 * Records a topic in storage, so other processes and the CLI know its lifecycle. Asynchronous, so `topic()` stays
 * synchronous: sends and consumers wait for it, and `topic.ready()` surfaces a conflict at start-up.
 */
export function declareTopic(storage: StorageAdapter<unknown>, name: string, options: ResolvedTopicOptions, track: <T>(work: Promise<T>) => Promise<T>): TopicDeclaration {
  const { lifecycle } = options;
  const record: TopicRecord = { name, lifecycle, deadLetter: options.deadLetter, maxDeliveries: options.maxDeliveries, declaredAt: Date.now() };
  const declared = storage.declareTopic(record).then((kept) => {
    if (kept.lifecycle !== lifecycle) {
      throw new TopicConflictError(
        `Topic "${name}" is recorded in ${storage.name} storage as ${kept.lifecycle} (declared ${new Date(kept.declaredAt).toISOString()}); ` +
          `this process declares it ${lifecycle}. Declare it as ${kept.lifecycle}, or use another topic name.`,
      );
    }
  });
  const declaration: TopicDeclaration = { declared };
  // Surfaced by ready(), send() and consume(); never an unhandled rejection of its own.
  track(declared).catch((error: unknown) => (declaration.error = error));
  return declaration;
}

/** Wakes this process's consumers of the topic (after a store or requeue). */
export function notify(rt: Pick<TopicRuntime, 'consumers'>): void {
  for (const c of rt.consumers) c.wake();
}
