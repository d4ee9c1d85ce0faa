import type { Lifecycle, MessageState } from '@tidings/core';
import type { LeaseRequest, StoredMessage, SubscriptionRecord, TopicRecord } from '@tidings/core/adapter';
import type { SqlRow } from './connection.js';

/** A topic registry row as the contract's record. */
export function toTopic(r: SqlRow): TopicRecord {
  const topic: TopicRecord = {
    name: r.name as string,
    lifecycle: r.lifecycle as Lifecycle,
    maxDeliveries: Number(r.max_deliveries),
    declaredAt: Number(r.declared_at),
  };
  if (r.dead_letter != null) topic.deadLetter = r.dead_letter as string;
  if (r.ordering != null) topic.ordering = r.ordering as string;
  return topic;
}

/** A subscription registry row as the contract's record. */
export function toSubscription(r: SqlRow): SubscriptionRecord {
  const s: SubscriptionRecord = {
    topic: r.topic as string,
    name: r.name as string,
    maxDeliveries: Number(r.max_deliveries),
    declaredAt: Number(r.declared_at),
  };
  if (r.dead_letter != null) s.deadLetter = r.dead_letter as string;
  if (r.paused_at != null) s.pausedAt = Number(r.paused_at);
  return s;
}

/** A message row (read with `MESSAGE_COLUMNS`) as the contract's message, optional fields left out when empty. */
export function toMessage(r: SqlRow): StoredMessage {
  const m: StoredMessage = {
    id: r.id as string,
    topic: r.topic as string,
    subscription: r.subscription as string,
    body: r.body as string,
    state: r.state as MessageState,
    deliveries: Number(r.deliveries),
    availableAt: Number(r.available_at),
    createdAt: Number(r.created_at),
  };
  if (r.ordering_key != null) m.key = r.ordering_key as string;
  if (r.lease_until != null) m.leaseUntil = Number(r.lease_until);
  if (r.lease_token != null) m.leaseToken = r.lease_token as string;
  if (r.last_error != null) m.lastError = r.last_error as string;
  if (r.headers != null) m.headers = r.headers as string;
  return m;
}

/**
 * A leased row as the contract's message: what the lease set itself comes from the request (a lease that deletes
 * returns the deliveries before its own). Built field by field: spreading the row and overriding some of its
 * fields takes V8 off its fast path (about 10 µs a message, measured).
 */
export function leasedMessage(r: SqlRow, req: LeaseRequest): StoredMessage {
  const m: StoredMessage = {
    id: r.id as string,
    topic: req.topic,
    subscription: req.subscription,
    body: r.body as string,
    state: req.to,
    deliveries: Number(r.deliveries) + (req.remove ? 1 : 0),
    availableAt: Number(r.available_at),
    createdAt: Number(r.created_at),
    leaseUntil: req.leaseUntil,
    leaseToken: req.leaseToken,
  };
  if (r.ordering_key != null) m.key = r.ordering_key as string;
  if (r.last_error != null) m.lastError = r.last_error as string;
  if (r.headers != null) m.headers = r.headers as string;
  return m;
}
