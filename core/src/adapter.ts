// `@tidings/core/adapter`: what a storage adapter is written against (the contract, its requests and records, the
// idempotency store) and what drives one as Tidings does: the request builders, the lifecycle plans, the lease policy
// and the ledgers, which the conformance suite, the CLI and the dashboard use too.
export * from './storage/contract.js';
export type { IdempotencyStore } from './storage/idempotency.js';
export { decorateStorage } from './storage/decorate.js';
export { requests, type ProtocolTopic, type ProtocolSubscription } from './storage/requests.js';
export { topicTotals } from './storage/counts.js';
export { lifecyclePlans, type LifecyclePlan, type ProducerStrategy, type DeliveryStrategy } from './lifecycle/plan.js';
export { leasePolicy, type LeasePolicy } from './delivery/lease-policy.js';
export { TopicLedger, SubscriptionLedger, recordedLedger, type LedgerParts, type LedgerTopic, type Failure, type Released } from './delivery/ledger.js';
