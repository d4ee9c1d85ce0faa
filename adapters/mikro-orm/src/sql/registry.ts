import type { SubscriptionRecord, TopicRecord } from '@tidings/core/adapter';
import type { Statement } from './statement.js';

const TOPIC_COLUMNS = 'name, lifecycle, ordering, dead_letter, max_deliveries, declared_at';
const SUBSCRIPTION_COLUMNS = 'topic, name, dead_letter, max_deliveries, declared_at, paused_at';
/** What a declaration writes: never the pause, which is an operator's. */
const DECLARED_COLUMNS = 'topic, name, dead_letter, max_deliveries, declared_at';

/** Records a topic unless one of its name is: the first declaration wins, in one statement, so two processes agree. */
export function declareTopicStatement(t: TopicRecord): Statement {
  return {
    sql: `INSERT INTO tidings_topic (${TOPIC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
    params: [t.name, t.lifecycle, t.ordering ?? null, t.deadLetter ?? null, t.maxDeliveries, t.declaredAt],
  };
}

/** One recorded topic. */
export function topicStatement(name: string): Statement {
  return { sql: `SELECT ${TOPIC_COLUMNS} FROM tidings_topic WHERE name = ?`, params: [name] };
}

/** Every recorded topic, by name. */
export function topicsStatement(): Statement {
  return { sql: `SELECT ${TOPIC_COLUMNS} FROM tidings_topic ORDER BY name`, params: [] };
}

/** Records a subscription unless it is: the first declaration wins. */
export function declareSubscriptionStatement(s: SubscriptionRecord): Statement {
  return {
    sql: `INSERT INTO tidings_subscription (${DECLARED_COLUMNS}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (topic, name) DO NOTHING`,
    params: [s.topic, s.name, s.deadLetter ?? null, s.maxDeliveries, s.declaredAt],
  };
}

/** The recorded subscriptions of a topic (one of them when `name` is given), or of all. */
export function subscriptionsStatement(topic?: string, name?: string): Statement {
  const where = topic === undefined ? '' : name === undefined ? ' WHERE topic = ?' : ' WHERE topic = ? AND name = ?';
  return { sql: `SELECT ${SUBSCRIPTION_COLUMNS} FROM tidings_subscription${where} ORDER BY topic, name`, params: [topic, name].filter((p) => p !== undefined) };
}

/** A subscription forgotten and its copies dropped: two statements, run in one transaction. */
export function removeSubscriptionStatements(topic: string, name: string): [Statement, Statement] {
  return [
    { sql: `DELETE FROM tidings_subscription WHERE topic = ? AND name = ? RETURNING name`, params: [topic, name] },
    { sql: `DELETE FROM tidings_message WHERE topic = ? AND subscription = ? RETURNING seq`, params: [topic, name] },
  ];
}

/** Pauses (a time) or resumes (null) a recorded subscription. */
export function setPausedStatement(topic: string, name: string, pausedAt: number | undefined): Statement {
  return { sql: `UPDATE tidings_subscription SET paused_at = ? WHERE topic = ? AND name = ? RETURNING name`, params: [pausedAt ?? null, topic, name] };
}
