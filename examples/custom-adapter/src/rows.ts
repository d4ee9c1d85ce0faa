import type { MessageState } from '@tidings/core';
import type { StoredMessage, SubscriptionRecord, TopicRecord } from '@tidings/core/adapter';

/** A `topics` row as SQLite returns it. */
export interface TopicRow {
  name: string;
  lifecycle: TopicRecord['lifecycle'];
  ordering: string | null;
  dead_letter: string | null;
  max_deliveries: number;
  declared_at: number;
}

/** A recorded topic, optional fields left out when NULL so records compare equal to what was declared. */
export function toTopic(r: TopicRow): TopicRecord {
  const topic: TopicRecord = { name: r.name, lifecycle: r.lifecycle, maxDeliveries: r.max_deliveries, declaredAt: r.declared_at };
  if (r.ordering !== null) topic.ordering = r.ordering;
  if (r.dead_letter !== null) topic.deadLetter = r.dead_letter;
  return topic;
}

/** A `subscriptions` row as SQLite returns it. */
export interface SubscriptionRow {
  topic: string;
  name: string;
  dead_letter: string | null;
  max_deliveries: number;
  declared_at: number;
}

/** A recorded subscription, without a dead-letter topic when it has none. */
export function toSubscription(r: SubscriptionRow): SubscriptionRecord {
  const subscription: SubscriptionRecord = { topic: r.topic, name: r.name, maxDeliveries: r.max_deliveries, declaredAt: r.declared_at };
  if (r.dead_letter !== null) subscription.deadLetter = r.dead_letter;
  return subscription;
}

/** A `messages` row (one subscription's copy) as SQLite returns it. */
export interface Row {
  seq: number;
  topic: string;
  subscription: string;
  id: string;
  ordering_key: string | null;
  body: string;
  state: MessageState;
  deliveries: number;
  available_at: number;
  created_at: number;
  lease_until: number | null;
  lease_token: string | null;
  last_error: string | null;
  headers: string | null;
}

/** A copy as Tidings reads it; `seq` only orders rows inside the adapter. */
export function toMessage(r: Row): StoredMessage {
  return {
    id: r.id,
    topic: r.topic,
    subscription: r.subscription,
    key: r.ordering_key ?? undefined,
    body: r.body,
    state: r.state,
    deliveries: r.deliveries,
    availableAt: r.available_at,
    createdAt: r.created_at,
    leaseUntil: r.lease_until ?? undefined,
    leaseToken: r.lease_token ?? undefined,
    lastError: r.last_error ?? undefined,
    headers: r.headers ?? undefined,
  };
}
