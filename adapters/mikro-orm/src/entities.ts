import { EntitySchema } from '@mikro-orm/core';

/** A message row: one subscription's copy. `seq` is store order; `(topic, id, subscription)` is unique. */
export interface MessageRow {
  seq: number;
  topic: string;
  subscription: string;
  id: string;
  orderingKey?: string | null;
  body: string;
  state: string;
  deliveries: number;
  availableAt: number;
  createdAt: number;
  leaseUntil?: number | null;
  leaseToken?: string | null;
  lastError?: string | null;
  headers?: string | null;
}

/** A remembered id: dedup window records and consumers' idempotency records share this shape. */
export interface IdRecordRow {
  topic: string;
  id: string;
  expiresAt: number;
}

/** A declared topic in the registry. */
export interface TopicRow {
  name: string;
  lifecycle: string;
  ordering?: string | null;
  deadLetter?: string | null;
  maxDeliveries: number;
  declaredAt: number;
}

/** A declared subscription in the registry. */
export interface SubscriptionRow {
  topic: string;
  name: string;
  deadLetter?: string | null;
  maxDeliveries: number;
  declaredAt: number;
  pausedAt?: number | null;
}

/** Key/value facts about the database, such as the schema version. */
export interface MetaRow {
  key: string;
  value: string;
}

/** Messages of every topic. */
export const MessageEntity = new EntitySchema<MessageRow>({
  name: 'TidingsMessage',
  tableName: 'tidings_message',
  properties: {
    seq: { type: 'bigint', primary: true, autoincrement: true },
    topic: { type: 'string', length: 200 },
    subscription: { type: 'string', length: 100, default: 'default' },
    id: { type: 'string', length: 200 },
    orderingKey: { type: 'string', length: 200, fieldName: 'ordering_key', nullable: true },
    body: { type: 'text' },
    state: { type: 'string', length: 16 },
    deliveries: { type: 'integer', default: 0 },
    availableAt: { type: 'bigint', fieldName: 'available_at' },
    createdAt: { type: 'bigint', fieldName: 'created_at' },
    leaseUntil: { type: 'bigint', fieldName: 'lease_until', nullable: true },
    leaseToken: { type: 'string', length: 64, fieldName: 'lease_token', nullable: true },
    lastError: { type: 'text', fieldName: 'last_error', nullable: true },
    headers: { type: 'text', nullable: true },
  },
  uniques: [{ name: 'tidings_message_copy', properties: ['topic', 'id', 'subscription'] }],
  indexes: [
    { name: 'tidings_message_ready', properties: ['topic', 'subscription', 'state', 'availableAt', 'seq'] },
    {
      name: 'tidings_message_key',
      expression: 'CREATE INDEX tidings_message_key ON tidings_message (topic, subscription, ordering_key, seq) WHERE ordering_key IS NOT NULL',
    },
  ],
});

/** End-to-end exactly-once: ids the broker has stored, kept for the dedup window. */
export const DedupEntity = new EntitySchema<IdRecordRow>({
  name: 'TidingsDedup',
  tableName: 'tidings_dedup',
  properties: {
    topic: { type: 'string', length: 200, primary: true },
    id: { type: 'string', length: 200, primary: true },
    expiresAt: { type: 'bigint', fieldName: 'expires_at', index: 'tidings_dedup_expires' },
  },
});

/** Exactly-once consumers: ids consumed, written in the handler's transaction. */
export const IdempotencyEntity = new EntitySchema<IdRecordRow>({
  name: 'TidingsIdempotency',
  tableName: 'tidings_idempotency',
  properties: {
    topic: { type: 'string', length: 400, primary: true },
    id: { type: 'string', length: 200, primary: true },
    expiresAt: { type: 'bigint', fieldName: 'expires_at', index: 'tidings_idempotency_expires' },
  },
});

/** Schema version and other facts about the database. */
export const MetaEntity = new EntitySchema<MetaRow>({
  name: 'TidingsMeta',
  tableName: 'tidings_meta',
  properties: {
    key: { type: 'string', length: 64, primary: true },
    value: { type: 'string', length: 200 },
  },
});

/** The topic registry: one row per declared topic. */
export const TopicEntity = new EntitySchema<TopicRow>({
  name: 'TidingsTopic',
  tableName: 'tidings_topic',
  properties: {
    name: { type: 'string', length: 200, primary: true },
    lifecycle: { type: 'string', length: 32 },
    ordering: { type: 'string', length: 16, nullable: true },
    deadLetter: { type: 'string', length: 200, fieldName: 'dead_letter', nullable: true },
    maxDeliveries: { type: 'integer', fieldName: 'max_deliveries' },
    declaredAt: { type: 'bigint', fieldName: 'declared_at' },
  },
});

/** The subscription registry: one row per declared subscription of a topic. */
export const SubscriptionEntity = new EntitySchema<SubscriptionRow>({
  name: 'TidingsSubscription',
  tableName: 'tidings_subscription',
  properties: {
    topic: { type: 'string', length: 200, primary: true },
    name: { type: 'string', length: 100, primary: true },
    deadLetter: { type: 'string', length: 200, fieldName: 'dead_letter', nullable: true },
    maxDeliveries: { type: 'integer', fieldName: 'max_deliveries' },
    declaredAt: { type: 'bigint', fieldName: 'declared_at' },
    pausedAt: { type: 'bigint', fieldName: 'paused_at', nullable: true },
  },
});

/** Add these to your own MikroORM config to keep Tidings' tables in your database. */
export const tidingsEntities = [MessageEntity, DedupEntity, IdempotencyEntity, MetaEntity, TopicEntity, SubscriptionEntity];
