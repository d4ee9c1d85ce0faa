import type { BatchConsumeOptions, BatchHandler, ConsumeOptions, Handler } from './delivery/consume.js';
import { Consumer, type Handling } from './delivery/consumer.js';
import type { BrowseOptions } from './storage/requests.js';
import type { SubscriptionRuntime } from './delivery/runtime.js';
import { InvalidOptionsError, SubscriptionInUseError } from './errors.js';
import type { MessageState } from './lifecycle/names.js';
import type { BrowsePage, StoredMessage } from './storage/contract.js';

/**
 * One subscription of a topic, as a consumer group is in Kafka: it gets every message stored in the topic after it
 * was declared, with its own deliveries, leases, backoff, dead letters and idempotency records; its consumers compete.
 */
export class Subscription<T = unknown, Tx = unknown> {
  /** @internal */
  constructor(readonly runtime: SubscriptionRuntime) {}

  /** The subscription's name. */
  get name(): string {
    return this.runtime.name;
  }

  /** Its topic's name. */
  get topic(): string {
    return this.runtime.topic.name;
  }

  /** Resolves once storage has recorded the subscription (and its topic). */
  ready(): Promise<void> {
    return this.runtime.declaration.declared;
  }

  /** Starts a consumer: the handler's return acks a message, a throw nacks it. Consumers of one subscription compete. */
  consume(handler: Handler<T, Tx>, options: ConsumeOptions = {}): Consumer<T, Tx> {
    if (typeof handler !== 'function') throw new InvalidOptionsError(`consume() needs a handler function, got ${typeof handler}.`);
    return this.start({ each: handler }, options);
  }

  /**
   * Starts a consumer that hands each leased batch (up to `batchSize`) to one call of `handler`: on exactly-once in
   * one transaction with the batch's consumption. Return to ack the batch, throw to nack it, `ctx.fail(m)` to nack some.
   */
  consumeBatch(handler: BatchHandler<T, Tx>, options: BatchConsumeOptions = {}): Consumer<T, Tx> {
    if (typeof handler !== 'function') throw new InvalidOptionsError(`consumeBatch() needs a handler function, got ${typeof handler}.`);
    if ((options as ConsumeOptions)?.concurrency !== undefined) {
      throw new InvalidOptionsError(
        'consumeBatch() takes no concurrency: its handler gets the whole batch. Start more consumers to handle batches side by side.',
      );
    }
    return this.start({ batch: handler }, options);
  }

  private start(handling: Handling<T, Tx>, options: ConsumeOptions): Consumer<T, Tx> {
    const s = this.runtime;
    s.topic.assertOpen();
    const consumer = new Consumer<T, Tx>(s, handling, options);
    s.consumers.add(consumer);
    return consumer;
  }

  /** Its messages by state. */
  async counts(): Promise<Partial<Record<MessageState, number>>> {
    const all = await this.runtime.topic.storage.counts(this.topic);
    return all[this.topic]?.[this.name] ?? {};
  }

  /** Its dead messages, oldest first (none for a lifecycle whose messages never die). */
  deadLetters(limit = 100): Promise<StoredMessage[]> {
    return this.runtime.ledger.deadLetters(limit);
  }

  /** Puts its dead messages (all, or the given ids) back for delivery as new lifecycles; returns how many. */
  async redrive(ids?: string[]): Promise<number> {
    return (await this.runtime.ledger.redrive(ids)).length;
  }

  /**
   * Pauses the subscription for every process, durably: its consumers lease nothing more (here at once, in other
   * processes within half a second) and finish what they hold; a restart keeps it paused. Sends still store.
   */
  async pause(): Promise<void> {
    await this.declared();
    await this.runtime.ledger.pause();
  }

  /** Lets its consumers lease again, in every process. */
  async resume(): Promise<void> {
    await this.declared();
    await this.runtime.ledger.resume();
  }

  /** Since when it is paused (epoch ms), or undefined while it runs. */
  async pausedAt(): Promise<number | undefined> {
    await this.declared();
    return this.runtime.ledger.pausedAt();
  }

  /** A page of its messages, in delivery order: `{ view: 'waiting' | 'delayed' | 'leased' | 'dead' }`, or `{ id }`, or `{ key }`; pass `next` as `after` for the page after. */
  async browse(options: BrowseOptions): Promise<BrowsePage> {
    this.runtime.topic.assertOpen();
    return this.runtime.ledger.browse(options);
  }

  /** One message by id, as this subscription holds it (any state), or undefined. */
  async message(id: string): Promise<StoredMessage | undefined> {
    this.runtime.topic.assertOpen();
    return this.runtime.ledger.message(id);
  }

  /** Drops every waiting and delayed message, for good (leased ones finish); returns how many. Retention clean-up is `tidings.purge()`. */
  async empty(): Promise<number> {
    await this.declared();
    return this.runtime.ledger.empty();
  }

  /** Drops dead messages (all, or the given ids) for good; returns how many. */
  async discard(ids?: string[]): Promise<number> {
    await this.declared();
    return this.runtime.ledger.discard(ids);
  }

  /** Makes delayed messages (a retry's backoff, a send's delay), all or the given ids, due now; returns how many. */
  async retryNow(ids?: string[]): Promise<number> {
    await this.declared();
    return (await this.runtime.ledger.retryNow(ids)).length;
  }

  private async declared(): Promise<void> {
    this.runtime.topic.assertOpen();
    await this.runtime.declaration.declared;
  }

  /**
   * Forgets the subscription in storage and drops every copy it holds; returns how many. Refused with
   * `SubscriptionInUseError` while a consumer of it runs in this process, or while any process holds a lease of it.
   */
  async remove(): Promise<number> {
    const s = this.runtime;
    const { topic } = s;
    topic.assertOpen();
    const leased = (await this.counts())[topic.plan.leased] ?? 0;
    if (s.consumers.size > 0 || leased > 0) throw new SubscriptionInUseError(topic.name, s.name, s.consumers.size, leased);
    await s.declaration.declared;
    const dropped = await topic.storage.removeSubscription(topic.name, s.name);
    topic.subscriptions.delete(s.name);
    return dropped;
  }
}
