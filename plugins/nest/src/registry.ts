import type { Tidings, Topic } from '@tidings/core';

const KEY = Symbol.for('@tidings/nest.declared-topics');

// Kept on globalThis rather than in this module: the package has two entry points (the module and the
// microservices transport), and a bundled build may give each its own copy of this file.
const declared: WeakMap<Tidings<any>, Map<string, Topic<any, any>>> = ((globalThis as Record<symbol, unknown>)[KEY] ??= new WeakMap()) as WeakMap<
  Tidings<any>,
  Map<string, Topic<any, any>>
>;

/** Records a topic declared through `TidingsModule.forFeature` on `tidings`. */
export function recordTopic(tidings: Tidings<any>, topic: Topic<any, any>): void {
  let topics = declared.get(tidings);
  if (!topics) declared.set(tidings, (topics = new Map()));
  topics.set(topic.name, topic);
}

/** The topic `forFeature` declared under `name` on `tidings`, if any. */
export function declaredTopic<T = unknown, Tx = unknown>(tidings: Tidings<any>, name: string): Topic<T, Tx> | undefined {
  return declared.get(tidings)?.get(name) as Topic<T, Tx> | undefined;
}

/** Names of the topics `forFeature` declared on `tidings`, for error messages. */
export function declaredTopicNames(tidings: Tidings<any>): string[] {
  return [...(declared.get(tidings)?.keys() ?? [])];
}
