import 'reflect-metadata';

export * from './errors.js';
export * from './lifecycle/names.js';
export * from './lifecycle/machines/index.js';
export * from './lifecycle/table.js';
export * from './lifecycle/plan.js';
export { lifecycleGraph, type StateGraph, type GraphState, type GraphEdge, type GraphKind } from './diagrams/graph.js';
export { machineGraph, consumerGraph } from './diagrams/machine-graph.js';
export { lifecycleDiagram, mermaidDiagram } from './diagrams/mermaid.js';
export { dotDiagram } from './diagrams/dot.js';
export * from './events.js';
export * from './storage/contract.js';
export { decorateStorage } from './storage/decorate.js';
export * from './storage/idempotency.js';
export * from './services.js';
export * from './tokens.js';
export * from './options.js';
export { Topic } from './topic.js';
export { Subscription } from './subscription.js';
export type { SendAck, SendOptions, SendManyOptions } from './delivery/send.js';
export { DEFAULT_SUBSCRIPTION, idempotencyScope } from './storage/scopes.js';
export { topicTotals } from './storage/counts.js';
export { ORDERINGS, leasePolicy, type Ordering, type LeasePolicy } from './delivery/lease-policy.js';
export {
  TopicLedger,
  SubscriptionLedger,
  recordedLedger,
  type LedgerParts,
  type LedgerTopic,
  type Failure,
  type Released,
} from './delivery/ledger.js';
export type { TidingsPlugin, PluginHost, SendContext, HandleContext, BatchHandleContext, OutgoingMessage } from './plugin.js';
export { MAX_HEADER_BYTES } from './headers.js';
export { toInspectionEvent, type InspectionEvent } from './inspect.js';
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
export { consumerMachine, type ConsumerWork, type ConsumerEvent } from './delivery/consumer-machine.js';
export { PAUSE_CHECK_MS } from './delivery/pauses.js';
export { requests, MESSAGE_VIEWS, type MessageView, type BrowseOptions, type ProtocolTopic, type ProtocolSubscription } from './storage/requests.js';
export { Tidings, type TidingsHealth, type TidingsOptions, type TxOf } from './tidings.js';
export type { ContainerParts } from './container.js';
