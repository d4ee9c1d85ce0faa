import { DEFAULT_SUBSCRIPTION, type Ordering, type Subscription, type SubscriptionOptions, type Tidings, type Topic, type TopicOptions } from '@tidings/core';
import { NestSetupError } from './errors.js';

/** A topic as `forFeature` declared it on one instance, merged over every module that declares it. */
export interface DeclaredTopic {
  topic: Topic<any, any>;
  ordering: Ordering;
  /** Its subscriptions, with the options they were declared with. */
  subscriptions: Map<string, SubscriptionOptions>;
}

const KEY = Symbol.for('@tidings/nest.declared-topics');

// Kept on globalThis rather than in this module: the package has two entry points (the module and the
// microservices transport), and a bundled build may give each its own copy of this file.
const declared: WeakMap<Tidings<any>, Map<string, DeclaredTopic>> = ((globalThis as Record<symbol, unknown>)[KEY] ??= new WeakMap()) as WeakMap<
  Tidings<any>,
  Map<string, DeclaredTopic>
>;

/** Records a topic declared through `TidingsModule.forFeature` on `tidings`. */
export function recordTopic(tidings: Tidings<any>, entry: DeclaredTopic): void {
  let topics = declared.get(tidings);
  if (!topics) declared.set(tidings, (topics = new Map()));
  topics.set(entry.topic.name, entry);
}

/** What `forFeature` declared of `name` on `tidings`, if it declared it. */
export function topicDeclaration(tidings: Tidings<any>, name: string): DeclaredTopic | undefined {
  return declared.get(tidings)?.get(name);
}

/** The topic `forFeature` declared under `name` on `tidings`, if any. */
export function declaredTopic<T = unknown, Tx = unknown>(tidings: Tidings<any>, name: string): Topic<T, Tx> | undefined {
  return topicDeclaration(tidings, name)?.topic as Topic<T, Tx> | undefined;
}

/** Names of the topics `forFeature` declared on `tidings`, for error messages. */
export function declaredTopicNames(tidings: Tidings<any>): string[] {
  return [...(declared.get(tidings)?.keys() ?? [])];
}

/** A declaration's subscriptions by name, as core reads them: a list means no options of their own, none means `default`. */
export function subscriptionsOf(options: Pick<TopicOptions, 'subscriptions'>): Record<string, SubscriptionOptions> {
  const { subscriptions } = options;
  if (subscriptions === undefined) return { [DEFAULT_SUBSCRIPTION]: {} };
  if (Array.isArray(subscriptions)) return Object.fromEntries(subscriptions.map((name: string) => [name, {}]));
  return { ...(subscriptions as Record<string, SubscriptionOptions>) };
}

/**
 * The subscription `name` of `topic`, if its declaration lists it; otherwise `SUBSCRIPTION_NOT_DECLARED`, naming the
 * reader (`what`), the declared subscriptions and the declaration to change (`where`).
 */
export function declaredSubscription<T, Tx>(topic: Topic<T, Tx>, listed: readonly string[], name: string, what: string, where: string): Subscription<T, Tx> {
  if (listed.includes(name)) return topic.subscription(name);
  const names = listed.join(', ');
  if (name === DEFAULT_SUBSCRIPTION) {
    throw new NestSetupError(
      'SUBSCRIPTION_NOT_DECLARED',
      `${what} reads the default subscription, and topic "${topic.name}" is declared with subscriptions ${names} and no default one. ` +
        `Name the one to read (e.g. { subscription: '${listed[0]}' }), or add 'default' to the topic's subscriptions ${where}.`,
    );
  }
  throw new NestSetupError(
    'SUBSCRIPTION_NOT_DECLARED',
    `${what}: topic "${topic.name}" has no subscription "${name}" (declared: ${names}). Add '${name}' to the topic's subscriptions ${where}, ` +
      `or read one of the declared ones. Subscriptions are declared with their topic so that each one exists before the messages it must get are stored.`,
  );
}
