import {
  ClientProxy,
  Server,
  BaseRpcContext,
  type CustomTransportStrategy,
  type MessageHandler,
  type ReadPacket,
  type WritePacket,
} from '@nestjs/microservices';
import { isObservable, lastValueFrom, type Observable } from 'rxjs';
import {
  DEFAULT_SUBSCRIPTION,
  TidingsError,
  validateSubscriptionName,
  validateTopicName,
  type ConsumeContext,
  type ConsumeOptions,
  type Consumer,
  type Message,
  type SendAck,
  type Subscription,
  type Tidings,
  type TidingsEvents,
  type Topic,
  type TopicOptions,
} from '@tidings/core';
import { NestSetupError } from './errors.js';
import { TidingsRecord } from './record.js';
import { declaredSubscription, declaredTopicNames, subscriptionsOf, topicDeclaration } from './registry.js';

export { TidingsRecord, TidingsRecordBuilder, type TidingsRecordOptions } from './record.js';

/** Transport id of `TidingsServer`: `@EventPattern('orders', TIDINGS_TRANSPORT)` binds a handler to Tidings only. */
export const TIDINGS_TRANSPORT = Symbol('tidings.transport');

/** Thrown by `TidingsClient.send`: Tidings delivers events, it has no replies. */
export class RequestResponseNotSupportedError extends TidingsError {
  constructor(pattern: unknown) {
    super(
      'REQUEST_RESPONSE_NOT_SUPPORTED',
      `TidingsClient.send(${JSON.stringify(pattern)}) expects a reply, and Tidings topics carry events without replies. ` +
        `Use client.emit(pattern, payload) with an @EventPattern handler; for an answer, emit it to another topic.`,
    );
  }
}

/** Where a transport finds its topics: declared with `TidingsModule.forFeature`, or listed here. */
export interface TidingsTransportOptions {
  /**
   * The application's instance: `app.get(Tidings)`, `inject: [Tidings]` in an async microservice config, or a
   * function called on first use, for a microservice that does not exist yet: `() => app.get(Tidings)`.
   */
  tidings: Tidings<any> | (() => Tidings<any>);
  /** Topics no `forFeature` declared, by name. */
  topics?: Record<string, TopicOptions>;
}

/** `TidingsServer`'s options. */
export interface TidingsServerOptions extends TidingsTransportOptions {
  /** Consumer options of every pattern; `@EventPattern(topic, { concurrency, batchSize, pollMs })` overrides them per handler. */
  consume?: ConsumeOptions;
  /**
   * The subscription every pattern reads (default: `default`); `@EventPattern(topic, { subscription })` overrides it
   * per handler. It must be one its topic is declared with.
   */
  subscription?: string;
}

/** What `@EventPattern(topic, extras)` may carry on this transport: consumer options and the subscription to read. */
export interface TidingsPatternExtras extends ConsumeOptions {
  /** The subscription the handler reads, instead of the server's `subscription` option. */
  subscription?: string;
}

function instanceOf(options: TidingsTransportOptions): Tidings<any> {
  return typeof options.tidings === 'function' ? options.tidings() : options.tidings;
}

/** A topic a pattern names, with the subscriptions it is declared with and where that declaration is, for errors. */
interface PatternTopic {
  topic: Topic<unknown, unknown>;
  subscriptions: string[];
  where: string;
}

function topicOf(options: TidingsTransportOptions, pattern: unknown, role: string): PatternTopic {
  if (typeof pattern !== 'string') {
    throw new NestSetupError(
      'INVALID_DECLARATION',
      `${role}: the pattern ${JSON.stringify(pattern)} is not a topic name; Tidings patterns are topic names like 'orders'.`,
    );
  }
  try {
    validateTopicName(pattern);
  } catch (error) {
    throw new NestSetupError('INVALID_DECLARATION', `${role}: ${(error as Error).message}`, { cause: error });
  }
  const tidings = instanceOf(options);
  const declared = topicDeclaration(tidings, pattern);
  if (declared) {
    return {
      topic: declared.topic,
      subscriptions: [...declared.subscriptions.keys()],
      where: `in TidingsModule.forFeature([{ name: '${pattern}', subscriptions: [...] }])`,
    };
  }
  const listed = options.topics?.[pattern];
  if (listed) {
    return {
      topic: tidings.topic(pattern, listed),
      subscriptions: Object.keys(subscriptionsOf(listed)),
      where: `in the transport's topics option ({ '${pattern}': { subscriptions: [...] } })`,
    };
  }
  const known = [...declaredTopicNames(tidings), ...Object.keys(options.topics ?? {})];
  throw new NestSetupError(
    'TOPIC_NOT_DECLARED',
    `${role}: topic "${pattern}" is not declared. Declare it with TidingsModule.forFeature([{ name: '${pattern}', semantic: ... }]) or in the transport's topics option` +
      (known.length > 0 ? ` (declared topics: ${known.join(', ')}).` : '.'),
  );
}

/** The context of an `@EventPattern` handler on `TidingsServer` (`@Ctx() ctx: TidingsContext`). */
export class TidingsContext<T = unknown, Tx = unknown> extends BaseRpcContext<[Message<T>, ConsumeContext<Tx>]> {
  /** The delivered message: id, topic, payload, attempt, createdAt. */
  getMessage(): Message<T> {
    return this.args[0];
  }

  /** The consumer's context: `em` (the transaction on exactly-once topics), `extendLease(ms)`, `signal`. */
  getConsumeContext(): ConsumeContext<Tx> {
    return this.args[1];
  }

  /** The topic the message came from (the handler's pattern). */
  getTopic(): string {
    return this.args[0].topic;
  }
}

type ServerEvents = { [K in keyof TidingsEvents]: TidingsEvents[K] };

/**
 * A Nest microservices transport over Tidings: each `@EventPattern(topic)` handler consumes a subscription of its
 * topic (the server's `subscription`, or its own) with the topic's delivery semantic. The handler's outcome settles
 * the message: a result acks it, a thrown error (or an observable that errors) nacks it for redelivery.
 */
export class TidingsServer extends Server<ServerEvents> implements CustomTransportStrategy {
  private readonly consumers: Consumer<any, any>[] = [];

  constructor(private readonly options: TidingsServerOptions) {
    super();
    this.transportId = TIDINGS_TRANSPORT;
  }

  /** Starts one consumer per `@EventPattern` topic and subscription; a pattern that is not a declared topic, or subscription, fails the start. */
  listen(callback: (error?: unknown, ...info: unknown[]) => void): void {
    try {
      const handlers = [...this.messageHandlers];
      for (const [pattern, handler] of handlers) {
        if (handler.isEventHandler) continue;
        this.logger.warn(`@MessagePattern(${pattern}) is not served by TidingsServer: Tidings carries events without replies; use @EventPattern.`);
      }
      const planned = handlers.flatMap(([pattern, head]) => (head.isEventHandler ? this.plan(pattern, head) : []));
      for (const { subscription, handler, options } of planned) {
        this.consumers.push(subscription.consume((message, ctx) => this.deliver(handler, message, ctx), options));
      }
    } catch (error) {
      void this.close();
      callback(error);
      return;
    }
    this._status$?.next('connected');
    callback();
  }

  /** Drains this server's consumers; the `Tidings` instance stays open (the module, or its owner, closes it). */
  async close(): Promise<void> {
    await Promise.all(this.consumers.splice(0).map((c) => c.stop()));
    this._status$?.next('disconnected');
  }

  /** Listens to an event of the instance's `tidings.events` (e.g. `error`, `deadLetter`). */
  on<K extends keyof ServerEvents>(event: K, callback: ServerEvents[K]): void {
    instanceOf(this.options).events.on(event, callback as never);
  }

  /** The `Tidings` instance. */
  unwrap<T>(): T {
    return instanceOf(this.options) as T;
  }

  /**
   * One consumer per subscription the handlers of `pattern` read. Nest chains every event handler of a pattern into
   * one, each calling the next; the chain is split so that handlers of one subscription run together for each of its
   * messages (acked when all succeed) and never for another subscription's.
   */
  private plan(
    pattern: string,
    head: MessageHandler,
  ): Array<{ subscription: Subscription<unknown, unknown>; handler: MessageHandler; options: ConsumeOptions }> {
    const role = `@EventPattern(${JSON.stringify(pattern)})`;
    const { topic, subscriptions, where } = topicOf(this.options, pattern, role);
    const groups = new Map<string, MessageHandler[]>();
    for (let handler: MessageHandler | undefined = head; handler; handler = handler.next as MessageHandler | undefined) {
      const name = ((handler.extras ?? {}) as TidingsPatternExtras).subscription ?? this.options.subscription ?? DEFAULT_SUBSCRIPTION;
      try {
        validateSubscriptionName(name, topic.name);
      } catch (error) {
        throw new NestSetupError('INVALID_DECLARATION', `${role}: ${(error as Error).message}`, { cause: error });
      }
      groups.set(name, [...(groups.get(name) ?? []), handler]);
    }
    const planned = [...groups].map(([name, group]) => {
      const what = name === DEFAULT_SUBSCRIPTION ? role : `${role} on subscription "${name}"`;
      const subscription = declaredSubscription(topic, subscriptions, name, what, where);
      const { concurrency, batchSize, pollMs } = (group[0]!.extras ?? {}) as TidingsPatternExtras;
      const perHandler = Object.fromEntries(Object.entries({ concurrency, batchSize, pollMs }).filter(([, v]) => v !== undefined));
      return { subscription, group, options: { ...this.options.consume, ...perHandler } };
    });
    for (const { group } of planned) group.forEach((handler, i) => (handler.next = group[i + 1]));
    return planned.map(({ subscription, group, options }) => ({ subscription, handler: group[0]!, options }));
  }

  private async deliver(handler: MessageHandler, message: Message<unknown>, ctx: ConsumeContext<unknown>): Promise<void> {
    const context = new TidingsContext<unknown, unknown>([message, ctx]);
    const run = async () => {
      const result = await handler(message.payload, context);
      // An exception filter turns a throwing handler into an observable that errors: waiting on it decides the nack.
      if (isObservable(result)) await lastValueFrom(result, { defaultValue: undefined });
    };
    // Nest 10 has no processing hooks; from 11 on they let instrumentation wrap each delivery.
    const start = this.onProcessingStartHook ?? ((_id: unknown, _ctx: unknown, done: () => Promise<unknown>) => void done());
    await new Promise<void>((resolve, reject) => {
      start(this.transportId!, context, () => {
        const done = run().finally(() => this.onProcessingEndHook?.(this.transportId!, context));
        done.then(resolve, reject);
        return done;
      });
    });
  }
}

/** `TidingsClient`'s options. */
export type TidingsClientOptions = TidingsTransportOptions;

/**
 * A Nest `ClientProxy` that sends through Tidings: `client.emit('orders', payload)` sends to the topic with its
 * semantic, and the observable emits the broker's ack (`{ id, duplicate }`); `client.emit('orders', new
 * TidingsRecord(payload, { id, key }))` sends with an id and an ordering key. `send` (request/response) is refused.
 */
export class TidingsClient extends ClientProxy {
  constructor(private readonly options: TidingsClientOptions) {
    super();
  }

  /** Nothing to connect: the `Tidings` instance is open already. */
  async connect(): Promise<Tidings<any>> {
    return instanceOf(this.options);
  }

  /** Nothing to close: whoever created the `Tidings` instance closes it. */
  close(): void {}

  /** The `Tidings` instance. */
  unwrap<T>(): T {
    return instanceOf(this.options) as T;
  }

  /** Refused: throws `RequestResponseNotSupportedError`; use `emit`. */
  override send<TResult = any, TInput = any>(pattern: any, _data: TInput): Observable<TResult> {
    throw new RequestResponseNotSupportedError(pattern);
  }

  protected publish(packet: ReadPacket, _callback: (packet: WritePacket) => void): () => void {
    throw new RequestResponseNotSupportedError(packet.pattern);
  }

  protected async dispatchEvent<T = SendAck>(packet: ReadPacket): Promise<T> {
    const { topic } = topicOf(this.options, packet.pattern, `TidingsClient.emit(${JSON.stringify(packet.pattern)})`);
    const { data, options } = packet.data instanceof TidingsRecord ? packet.data : { data: packet.data, options: undefined };
    return (await topic.send(data, options)) as T;
  }
}
