import { Inject, SetMetadata } from '@nestjs/common';
import {
  DEFAULT_SUBSCRIPTION,
  validateSubscriptionName,
  validateTopicName,
  type BatchContext,
  type ConsumeContext,
  type ConsumeOptions,
  type Message,
  type TidingsEvents,
} from '@tidings/core';
import { TIDINGS, getTopicToken } from './tokens.js';

/** Metadata key of `@Consumer` on a class. */
export const CONSUMER_METADATA = 'tidings:consumer';
/** Metadata key of `@OnMessage` on a method. */
export const ON_MESSAGE_METADATA = 'tidings:on-message';
/** Metadata key of `@OnTidingsEvent` on a method. */
export const ON_TIDINGS_EVENT_METADATA = 'tidings:on-event';

/** What `@Consumer` and `@OnMessage` take: the subscription to read, and how to consume it. */
export interface ConsumerOptions extends ConsumeOptions {
  /**
   * The subscription of the topic to read (default: `default`, the one a topic declared without `subscriptions` has).
   * Consumers of one subscription compete for its messages; each subscription gets every message.
   */
  subscription?: string;
  /**
   * Hand each leased batch (up to `batchSize`) to one call: `handle(messages, ctx)` with an array, on exactly-once
   * in one transaction with the batch's consumption; `ctx.fail(message)` nacks one. Takes no `concurrency`.
   */
  batch?: boolean;
}

/** What `@Consumer` and `@OnMessage` record: the topic, the subscription, and how to consume it. */
export interface ConsumerMetadata {
  topic: string;
  subscription: string;
  batch: boolean;
  options: ConsumeOptions;
}

/** What `@OnTidingsEvent` records. */
export interface OnTidingsEventMetadata {
  event: keyof TidingsEvents;
}

/** The shape of a `@Consumer` class: return to ack, throw to nack. */
export interface MessageConsumer<T = unknown, Tx = unknown> {
  handle(message: Message<T>, ctx: ConsumeContext<Tx>): Promise<void> | void;
}

/** The shape of a `@Consumer(topic, { batch: true })` class: the leased batch at once; return to ack it, throw to nack it. */
export interface BatchConsumer<T = unknown, Tx = unknown> {
  handle(messages: Message<T>[], ctx: BatchContext<Tx>): Promise<void> | void;
}

/** Checks the names when the class is defined, as a mistyped name is easier to find there than at start-up. */
function consumerMetadata(topic: string, options: ConsumerOptions): ConsumerMetadata {
  validateTopicName(topic);
  const { subscription = DEFAULT_SUBSCRIPTION, batch = false, ...consume } = options;
  validateSubscriptionName(subscription, topic);
  return { topic, subscription, batch, options: consume };
}

function append<V>(key: string, value: V, target: object): void {
  const list: V[] = Reflect.getMetadata(key, target) ?? [];
  Reflect.defineMetadata(key, [...list, value], target);
}

/**
 * Makes a provider class a consumer of `topic` (of its `options.subscription`, or the default one): its
 * `handle(message, ctx)` runs for each message from application bootstrap until shutdown, which drains it. The topic,
 * and the subscription, must be declared with `TidingsModule.forFeature`.
 */
export function Consumer(topic: string, options: ConsumerOptions = {}): ClassDecorator {
  return SetMetadata<string, ConsumerMetadata>(CONSUMER_METADATA, consumerMetadata(topic, options));
}

/** Makes a provider method a consumer of `topic` (of `options.subscription`, or the default one), like a `@Consumer` class's `handle`. */
export function OnMessage(topic: string, options: ConsumerOptions = {}) {
  const metadata = consumerMetadata(topic, options);
  return <M extends ((message: Message<any>, ctx: ConsumeContext<any>) => unknown) | ((messages: Message<any>[], ctx: BatchContext<any>) => unknown)>(
    _target: object,
    _key: string | symbol,
    descriptor: TypedPropertyDescriptor<M>,
  ): void => {
    append<ConsumerMetadata>(ON_MESSAGE_METADATA, metadata, descriptor.value!);
  };
}

/** Subscribes a provider method to an event of the application's `tidings.events` (e.g. `deadLetter`). */
export function OnTidingsEvent<E extends keyof TidingsEvents>(event: E) {
  return <M extends (e: Parameters<TidingsEvents[E]>[0]) => unknown>(_target: object, _key: string | symbol, descriptor: TypedPropertyDescriptor<M>): void => {
    append<OnTidingsEventMetadata>(ON_TIDINGS_EVENT_METADATA, { event }, descriptor.value!);
  };
}

/** Injects the topic `name` declared with `TidingsModule.forFeature`. */
export function InjectTopic(name: string): PropertyDecorator & ParameterDecorator {
  return Inject(getTopicToken(name));
}

/** Injects the application's `Tidings` instance (injecting the `Tidings` class does the same). */
export function InjectTidings(): PropertyDecorator & ParameterDecorator {
  return Inject(TIDINGS);
}
