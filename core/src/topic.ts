import type { BatchConsumeOptions, BatchHandler, ConsumeOptions, Handler } from './delivery/consume.js';
import type { Consumer } from './delivery/consumer.js';
import { Producer } from './delivery/producer.js';
import type { SendAck, SendManyOptions, SendOptions } from './delivery/send.js';
import { subscriptionOf, type TopicRuntime } from './delivery/runtime.js';
import { InvalidOptionsError } from './errors.js';
import type { SubscriptionOptions } from './options.js';
import type { SubscriptionRecord } from './storage/contract.js';
import { DEFAULT_SUBSCRIPTION } from './storage/scopes.js';
import { Subscription } from './subscription.js';
import { knownOptions } from './known-options.js';

/** What send() and sendMany() read. */
const SEND_OPTIONS = ['id', 'key', 'delayMs', 'deliverAt', 'em', 'headers'] as const satisfies ReadonlyArray<keyof SendOptions>;

/** A declared topic: send to it, and consume it through its subscriptions (`consume()` reads the default one). */
export class Topic<T = unknown, Tx = unknown> {
  private readonly producer: Producer<T, Tx>;

  /** @internal */
  constructor(readonly runtime: TopicRuntime) {
    this.producer = new Producer<T, Tx>(runtime);
  }

  /** The topic's name. */
  get name(): string {
    return this.runtime.name;
  }

  /**
   * Resolves once storage has recorded the topic and the subscriptions declared with it; rejects with
   * `TopicConflictError` if another process declared it with another lifecycle or ordering.
   */
  ready(): Promise<void> {
    return this.runtime.declaration.declared;
  }

  /**
   * A subscription of the topic, declared in storage on first use: each message stored from then on is delivered to
   * it, whatever other subscriptions do with theirs. Its options count the first time it is named in this process.
   */
  subscription(name: string, options?: SubscriptionOptions): Subscription<T, Tx> {
    this.runtime.assertOpen();
    return new Subscription<T, Tx>(subscriptionOf(this.runtime, name, options));
  }

  /** The subscriptions storage records for the topic, declared by any process. */
  subscriptions(): Promise<SubscriptionRecord[]> {
    this.runtime.assertOpen();
    return this.runtime.storage.subscriptions(this.name);
  }

  /** Starts a consumer of the default subscription: the handler's return acks a message, a throw nacks it. */
  consume(handler: Handler<T, Tx>, options: ConsumeOptions = {}): Consumer<T, Tx> {
    return this.defaultSubscription().consume(handler, options);
  }

  /** The default subscription, refused on a topic declared with named subscriptions only. */
  private defaultSubscription(): Subscription<T, Tx> {
    const { runtime } = this;
    if (!runtime.subscriptions.has(DEFAULT_SUBSCRIPTION)) {
      const names = Object.keys(runtime.options.subscriptions).join(', ');
      throw new InvalidOptionsError(
        `Topic "${this.name}" was declared with subscriptions ${names} and no default one: consume one of them, e.g. ${this.name}.subscription('${Object.keys(runtime.options.subscriptions)[0]}').consume(handler).`,
      );
    }
    return this.subscription(DEFAULT_SUBSCRIPTION);
  }

  /** Starts a batch consumer of the default subscription (see `Subscription.consumeBatch`). */
  consumeBatch(handler: BatchHandler<T, Tx>, options: BatchConsumeOptions = {}): Consumer<T, Tx> {
    return this.defaultSubscription().consumeBatch(handler, options);
  }

  /** Sends one message; resolves with the broker's ack (at once, unacked, for at-most-once). */
  async send(payload: T, options: SendOptions<Tx> = {}): Promise<SendAck> {
    knownOptions('send()', options, SEND_OPTIONS);
    const { id, key, ...rest } = options;
    const [ack] = await this.producer.sendMany([payload], {
      ...rest,
      id: id === undefined ? undefined : () => id,
      key: key === undefined ? undefined : () => key,
    });
    return ack!;
  }

  /** Sends a batch in one storage round-trip; acks come back in the batch's order. */
  async sendMany(payloads: T[], options: SendManyOptions<T, Tx> = {}): Promise<SendAck[]> {
    knownOptions('sendMany()', options, SEND_OPTIONS);
    return this.producer.sendMany(payloads, options);
  }
}
