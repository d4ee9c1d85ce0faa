import 'reflect-metadata';
import type { DependencyContainer } from 'tsyringe';
import { wireContainer, type ContainerParts } from './container.js';
import { ClosedError, InvalidOptionsError, TopicConflictError } from './errors.js';
import { knownOptions } from './known-options.js';
import { TidingsEventBus, type TransitionEvent } from './events.js';
import { toInspectionEvent, type InspectionEvent } from './inspect.js';
import { resolveTopicOptions, validateTopicName, type ResolvedTopicOptions, type TopicOptions } from './options.js';
import type { StateCounts, StorageAdapter, StoredMessage, SubscriptionCounts, SubscriptionRecord, TopicRecord, WakeUpHealth } from './storage/contract.js';
import { DEFAULT_SUBSCRIPTION } from './storage/scopes.js';
import { topicTotals } from './storage/counts.js';
import { lifecyclePlans } from './lifecycle/plan.js';
import { pluginChain, type PluginChain, type TidingsPlugin } from './plugin.js';
import { Tokens } from './tokens.js';
import { Topic } from './topic.js';
import type { StopOptions } from './delivery/consume.js';
import { PauseWatch } from './delivery/pauses.js';
import { ledgerOf, subscriptionOf, topicRuntime, type TopicServices } from './delivery/runtime.js';

/** What `Tidings.create` takes; any part left out is resolved from `container`, then defaulted. */
export interface TidingsOptions<Tx = unknown> extends ContainerParts<Tx> {
  /** How often `purge()` runs on its own, in ms (default 60 000; 0 turns it off). */
  purgeIntervalMs?: number;
}

/** What `tidings.health()` answers. */
export interface TidingsHealth {
  /** The storage adapter's name. */
  storage: string;
  /** True once `close()` was called. */
  closed: boolean;
  /** Wake-ups across processes, when the storage has them and a consumer asked for them. */
  wakeUps?: WakeUpHealth;
}

/** The transaction handle type of a storage adapter. */
export type TxOf<S> = S extends StorageAdapter<infer Tx> ? (unknown extends Tx ? unknown : [Tx] extends [undefined] ? undefined : NonNullable<Tx>) : unknown;

/** What `Tidings.create` reads. */
const CREATE_OPTIONS = ['storage', 'idempotency', 'clock', 'ids', 'logger', 'container', 'plugins', 'purgeIntervalMs'] as const satisfies ReadonlyArray<
  keyof TidingsOptions
>;

/** Default dead-letter topics are at-least-once: a dead letter must not be lost. */
const DEAD_LETTER_DEFAULTS: TopicOptions = { semantic: 'at-least-once' };

/** One Tidings instance: its own container, storage, topics, consumers and event bus. */
export class Tidings<Tx = unknown> {
  /** Typed events: `transition`, `duplicate`, `leaseExpired`, `deadLetter`, `handlerError`, `error`, `operator`. */
  readonly events: TidingsEventBus;
  private readonly declaredTopics = new Map<string, { options: ResolvedTopicOptions; topic: Topic<any, Tx> }>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly purgeTimer?: NodeJS.Timeout;
  /** Tells this process's consumers of their subscriptions' pauses. */
  private readonly pauses: PauseWatch;
  private closing?: Promise<void>;

  private constructor(
    /** The instance's child container; resolve `Tokens.*` from it. */
    readonly container: DependencyContainer,
    purgeIntervalMs: number,
    private readonly plugins: readonly TidingsPlugin[],
    private readonly chain: PluginChain,
  ) {
    this.events = container.resolve(Tokens.Events);
    this.pauses = new PauseWatch(container.resolve(Tokens.Storage), this.events, container.resolve(Tokens.Logger));
    if (purgeIntervalMs > 0) {
      this.purgeTimer = setInterval(() => void this.purge().catch((error) => this.emitError(error)), purgeIntervalMs);
      this.purgeTimer.unref();
    }
  }

  /** Creates an instance in a child container and opens its storage. */
  static async create<S extends StorageAdapter<any>>(options: TidingsOptions<TxOf<S>> & { storage?: S } = {}): Promise<Tidings<TxOf<S>>> {
    knownOptions('Tidings.create()', options ?? {}, CREATE_OPTIONS);
    const purgeIntervalMs = options.purgeIntervalMs ?? 60_000;
    if (!Number.isFinite(purgeIntervalMs) || purgeIntervalMs < 0) {
      throw new InvalidOptionsError(`purgeIntervalMs must be a number >= 0, got ${String(options.purgeIntervalMs)}.`);
    }
    const { child, storage, plugins } = wireContainer(options);
    const chain = pluginChain(plugins);
    await storage.open?.({ logger: child.resolve(Tokens.Logger) });
    const tidings = new Tidings<TxOf<S>>(child, purgeIntervalMs, plugins, chain);
    try {
      for (const plugin of plugins) await plugin.setup?.(tidings);
    } catch (error) {
      // A plugin that cannot start leaves nothing open behind it.
      await tidings.close();
      throw error;
    }
    return tidings;
  }

  /** The storage adapter in use. */
  get storage(): StorageAdapter<Tx> {
    return this.container.resolve(Tokens.Storage) as StorageAdapter<Tx>;
  }

  /** Declares a topic (or returns the one already declared with the same semantic). */
  topic<T = unknown>(name: string, options: TopicOptions): Topic<T, Tx> {
    this.assertOpen();
    validateTopicName(name);
    const resolved = resolveTopicOptions(name, options);
    const existing = this.declaredTopics.get(name);
    if (existing) {
      if (existing.options.lifecycle !== resolved.lifecycle) {
        throw new TopicConflictError(
          `Topic "${name}" is already declared as ${existing.options.lifecycle}; it cannot also be ${resolved.lifecycle}. ` +
            `Use another topic name, or declare it with the same semantic everywhere.`,
        );
      }
      if (existing.options.ordering !== resolved.ordering) {
        throw new TopicConflictError(
          `Topic "${name}" is already declared with ordering '${existing.options.ordering}'; it cannot also be ordered by '${resolved.ordering}'. Declare it the same way everywhere.`,
        );
      }
      // Subscriptions this declaration names that the first did not are added, as another process's declaration adds them.
      if (options.subscriptions !== undefined) {
        for (const [sub, o] of Object.entries(resolved.subscriptions))
          if (!existing.topic.runtime.subscriptions.has(sub)) subscriptionOf(existing.topic.runtime, sub, o);
      }
      return existing.topic as Topic<T, Tx>;
    }
    // Refuse before declaring the dead-letter topic, so a refused declaration leaves nothing behind.
    if (lifecyclePlans[resolved.lifecycle].idempotent && !this.container.isRegistered(Tokens.Idempotency, true)) {
      throw new InvalidOptionsError(
        `Topic "${name}" is exactly-once but the storage "${this.storage.name}" has no idempotency store: pass { idempotency: memoryIdempotency() } from @tidings/idempotency to Tidings.create.`,
      );
    }
    const topic = new Topic<T, Tx>(topicRuntime(this.services(), name, resolved, lifecyclePlans[resolved.lifecycle]));
    this.declaredTopics.set(name, { options: resolved, topic });
    return topic;
  }

  /** Every topic storage has recorded, by any process: its lifecycle, ordering, dead-letter topic and delivery limit. */
  topics(): Promise<TopicRecord[]> {
    this.assertOpen();
    return this.storage.topics();
  }

  /** Every subscription storage has recorded (of one topic, or of all), by any process. */
  subscriptions(topic?: string): Promise<SubscriptionRecord[]> {
    this.assertOpen();
    return this.storage.subscriptions(topic);
  }

  /**
   * How this instance is doing: its storage, and whether its consumers are woken when another process stores (absent
   * for a storage without wake-ups, or before a consumer started). Consumers poll whatever it says.
   */
  health(): TidingsHealth {
    const storage = this.storage;
    const wakeUps = storage.health?.().wakeUps;
    return { storage: storage.name, closed: this.closing !== undefined, ...(wakeUps ? { wakeUps } : {}) };
  }

  /** Registers work that `close()` must wait for. */
  private track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    return work.finally(() => this.pending.delete(work));
  }

  /**
   * Calls `listener` with every transition of `topic` (or of every topic) as it happens, in XState's inspection-event
   * shape; returns the function that stops it. Nothing is computed for transitions while nobody inspects or listens.
   */
  inspect(listener: (event: InspectionEvent) => void, options: { topic?: string } = {}): () => void {
    const { topic } = options;
    const onTransition = (t: TransitionEvent) => {
      if (topic === undefined || t.topic === topic) listener(toInspectionEvent(t));
    };
    this.events.on('transition', onTransition);
    return () => void this.events.off('transition', onTransition);
  }

  /** Message counts by state, for one topic or all: a topic's copies in all its subscriptions together. */
  async counts(topic?: string): Promise<StateCounts> {
    return topicTotals(await this.storage.counts(topic));
  }

  /** Message counts by subscription and state, for one topic or all. */
  subscriptionCounts(topic?: string): Promise<SubscriptionCounts> {
    return this.storage.counts(topic);
  }

  /** Dead messages of a declared topic's subscription (the default one unless named), oldest first. */
  async deadLetters(topic: string, limit = 100, options: { subscription?: string } = {}): Promise<StoredMessage[]> {
    return ledgerOf(this.declared(topic).runtime, options.subscription ?? DEFAULT_SUBSCRIPTION).deadLetters(limit);
  }

  /** Puts dead messages of a declared topic's subscription back for delivery as new lifecycles (the machine's REDRIVE); returns how many. */
  async redrive(topic: string, ids?: string[], options: { subscription?: string } = {}): Promise<number> {
    return (await ledgerOf(this.declared(topic).runtime, options.subscription ?? DEFAULT_SUBSCRIPTION).redrive(ids)).length;
  }

  /** Whether this instance has declared `topic` (`tidings.topic(name, …)`), so its consumers here can be reached. */
  hasTopic(topic: string): boolean {
    return this.declaredTopics.has(topic);
  }

  private declared(topic: string): Topic<unknown, Tx> {
    const declared = this.declaredTopics.get(topic);
    if (!declared) throw new InvalidOptionsError(`Topic "${topic}" is not declared: call tidings.topic("${topic}", { semantic }) first.`);
    return declared.topic;
  }

  /** Purges expired dedup and idempotency records, and dead letters past their topic's retention; returns how many. */
  async purge(): Promise<number> {
    const now = this.container.resolve(Tokens.Clock).now();
    const idempotency = this.container.isRegistered(Tokens.Idempotency, true) ? this.container.resolve(Tokens.Idempotency) : undefined;
    const counts = await Promise.all([
      // Expired dedup records of every topic, then each declared topic's dead letters past its retention.
      this.storage.purge({ now }),
      ...[...this.declaredTopics.values()].map(({ topic, options }) => {
        const { dead } = topic.runtime.plan;
        return dead === undefined ? 0 : this.storage.purge({ topic: topic.name, now, before: now - options.retentionMs, states: [dead] });
      }),
      idempotency?.purge(now) ?? 0,
    ]);
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Stops every consumer (draining handlers in flight for up to `graceMs`, see `StopOptions`), waits for pending
   * sends, then closes storage. Idempotent.
   */
  close(options: StopOptions = {}): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.purgeTimer);
      const subscriptions = [...this.declaredTopics.values()].flatMap((t) => [...t.topic.runtime.subscriptions.values()]);
      await Promise.all(subscriptions.flatMap((s) => [...s.consumers].map((c) => c.stop(options))));
      this.pauses.close();
      await Promise.allSettled([...this.pending]);
      const idempotency = this.container.isRegistered(Tokens.Idempotency, true) ? this.container.resolve(Tokens.Idempotency) : undefined;
      await idempotency?.close?.();
      for (const plugin of this.plugins) await plugin.close?.();
      await this.storage.close();
    })();
    return this.closing;
  }

  /** Lets `await using tidings = await Tidings.create(...)` close it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private assertOpen(): void {
    if (this.closing) throw new ClosedError('This Tidings instance');
  }

  private emitError(error: unknown): void {
    this.events.emit('error', { error, at: Date.now() });
  }

  /** The parts every topic of this instance runs with. */
  private services(): TopicServices {
    const c = this.container;
    return {
      storage: c.resolve(Tokens.Storage),
      idempotency: c.isRegistered(Tokens.Idempotency, true) ? c.resolve(Tokens.Idempotency) : (undefined as never),
      clock: c.resolve(Tokens.Clock),
      ids: c.resolve(Tokens.IdGenerator),
      logger: c.resolve(Tokens.Logger),
      events: this.events,
      pauses: this.pauses,
      plugins: this.chain,
      track: (work) => this.track(work),
      assertOpen: () => this.assertOpen(),
      deadLetterTopic: (name) => (this.declaredTopics.get(name)?.topic ?? this.topic(name, DEAD_LETTER_DEFAULTS)).runtime,
    };
  }
}
