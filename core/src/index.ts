import 'reflect-metadata';

// `@tidings/core`: what an application and its plugins use. What a storage adapter is written against is
// `@tidings/core/adapter`; the machines as pictures are `@tidings/core/diagrams`.
export * from './errors.js';
export * from './lifecycle/names.js';
export { lifecycleMachines, type LifecycleMachine } from './lifecycle/machines/index.js';
export { lifecycleTables, TransitionTable, type TransitionRule, type TransitionStep } from './lifecycle/table.js';
export * from './events.js';
export { systemClock, ManualClock, silentLogger, stderrLogger, type Clock, type IdGenerator, type Logger } from './services.js';
export * from './tokens.js';
export { MAX_TIMER_MS, validateTopicName, validateSubscriptionName, type BackoffOptions, type TopicOptions, type SubscriptionOptions } from './options.js';
export { Tidings, type TidingsHealth, type TidingsOptions, type TxOf } from './tidings.js';
export { Topic } from './topic.js';
export { Subscription } from './subscription.js';
export type { SendAck, SendOptions, SendManyOptions } from './delivery/send.js';
export { Consumer } from './delivery/consumer.js';
export {
  DEFAULT_GRACE_MS,
  type Message,
  type ConsumeContext,
  type ConsumeOptions,
  type Handler,
  type BatchHandler,
  type BatchContext,
  type BatchConsumeOptions,
  type StopOptions,
} from './delivery/consume.js';
export { PAUSE_CHECK_MS } from './delivery/pauses.js';
export { ORDERINGS, type Ordering } from './delivery/lease-policy.js';
export { DEFAULT_SUBSCRIPTION } from './storage/scopes.js';
export { MESSAGE_VIEWS, type MessageView, type BrowseOptions } from './storage/requests.js';
export type { TidingsPlugin, PluginHost, SendContext, HandleContext, BatchHandleContext, OutgoingMessage } from './plugin.js';
export { MAX_HEADER_BYTES } from './headers.js';
export type { InspectionEvent } from './inspect.js';
