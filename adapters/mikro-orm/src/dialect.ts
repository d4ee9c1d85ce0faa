import type { MikroORM } from '@mikro-orm/core';
import type { SchemaDialect } from './schema.js';

/**
 * What a failed statement means to Tidings: `busy` is worth retrying at once (locked, deadlock, serialization),
 * `connection-lost` means the database went away, `missing-table` that Tidings' tables are not there, `full` that
 * its disk (or quota) has no room left, `read-only` that it refuses writes (a read-only mount, file or server), and
 * `failed` any other database error.
 */
export type SqlErrorKind = 'busy' | 'connection-lost' | 'missing-table' | 'full' | 'read-only' | 'failed';

/** What differs between the SQL databases the shared layer runs on. */
export interface SqlDialect extends SchemaDialect {
  /** `sqlite`, `postgresql`. */
  readonly name: string;
  /** Appended to the lease's candidate SELECT: PostgreSQL skips rows another broker is leasing. */
  readonly lockClause: string;
  /**
   * Appended to the store's read of the subscription registry (alias `s`): PostgreSQL holds the rows it copies for,
   * so a subscription removed at the same moment either gets the copy before its removal or none.
   */
  readonly registryLock: string;
  /**
   * The lease's `seq` condition over its candidate SELECT, which must run once: PostgreSQL may re-run a
   * `LIMIT … FOR UPDATE SKIP LOCKED` subquery under `IN (…)` and hand out more rows than the limit.
   */
  seqIn(candidates: string): string;
  /**
   * Whether the driver itself runs the statements several handlers issue at once on one connection one after another
   * (SQLite's drivers do); where it does not (node-postgres deprecates it), Tidings serializes them while handlers
   * share a transaction.
   */
  readonly queuesStatements: boolean;
  /**
   * Whether the driver keeps a statement prepared on each connection when it is given a name (node-postgres): the
   * server then parses Tidings' few statements once per connection, not once per call. Done only on connections the
   * storage opened itself, set to plan each run afresh (`plan_cache_mode = force_custom_plan`): a plan cached while a
   * table was empty would scan it whole once it holds a backlog.
   */
  readonly namesStatements: boolean;
  /** A subquery of the strings (column `value`) in one JSON-array parameter, so a batch of ids is one bind. */
  readonly jsonStrings: string;
  /**
   * `column` is one of the strings in one JSON-array parameter, written so the planner probes the index for each one:
   * PostgreSQL plans `IN (subquery)` as a hash join over every row of the topic, which grows with the table.
   */
  stringIn(column: string): string;
  /**
   * A subquery of rows (n, id, ordering_key, body, available_at, last_error, headers) from one JSON-array parameter of
   * new messages (`NewMessage` as JSON), `n` being each one's place in the array.
   */
  readonly jsonMessages: string;
  /**
   * Whether a statement may hold several data-modifying CTEs (PostgreSQL): a store, its dedup record and its wake-up
   * are then one statement, one round trip and no transaction of their own.
   */
  readonly modifyingCtes: boolean;
  /**
   * Wakes consumers in other processes after a store: a CTE over `stored` (the ids the store inserted), run in the
   * store's statement, whose one parameter is the topic.
   */
  readonly notifyCte?: string;
  /**
   * Subscribes to those wake-ups on a connection of its own; resolves to its closer. Calls `onLost` (once) when that
   * connection fails or ends other than by the closer, so the storage can listen again.
   */
  listen?(orm: MikroORM, onTopic: (topic: string) => void, onLost: (error?: unknown) => void): Promise<() => Promise<unknown>>;
  /**
   * Sorts an error its driver raised; undefined when the error did not come from the database (a handler's own,
   * thrown inside a transaction), which then passes through unchanged.
   */
  classifyError(error: unknown): SqlErrorKind | undefined;
}
