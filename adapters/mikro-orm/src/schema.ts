/**
 * Tidings' own tables, created and upgraded by numbered migrations of hand-written SQL. Only these tables are
 * ever touched: an application's MikroORM may hold many more entities, and a schema diff over all of them
 * would alter the application's tables (and on SQLite rebuild ours under concurrent writers).
 */

/** What the DDL needs to know of a database. */
export interface SchemaDialect {
  /** The auto-incrementing primary key column type, e.g. `INTEGER PRIMARY KEY AUTOINCREMENT`. */
  readonly serialPrimaryKey: string;
  /**
   * Run first in each migration's transaction (after `tidings_meta` exists) so processes opening the same database
   * migrate one at a time.
   */
  readonly migrationLock?: string;
  /** Lists a table's columns (as rows with `name`); its one parameter is the table name. */
  readonly columnsSql: string;
  /**
   * Drops a unique index that may also be a constraint: PostgreSQL has a schema generator make one (which DROP
   * INDEX refuses); SQLite only has indexes.
   */
  dropUnique(table: string, name: string): string[];
  /** Widens a column's declared length; undefined where lengths are not enforced (SQLite). */
  widenColumn?(table: string, column: string, type: string): string;
}

/** One step of the schema; `version` is what the database is at once its statements ran. */
export interface Migration {
  readonly version: number;
  readonly statements: (d: SchemaDialect) => string[];
  /**
   * Skip the statements when this column exists already: an application whose own schema tools create tables from
   * `tidingsEntities` (which always have the newest shape) may have added it before Tidings recorded the version.
   */
  readonly unlessColumn?: { table: string; column: string };
}

const idTable = (name: string) => [
  `CREATE TABLE IF NOT EXISTS ${name} (topic VARCHAR(200) NOT NULL, id VARCHAR(200) NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (topic, id))`,
  `CREATE INDEX IF NOT EXISTS ${name}_expires ON ${name} (expires_at)`,
];

/** The subscription every message stored before subscriptions existed belongs to (core's `DEFAULT_SUBSCRIPTION`). */
const DEFAULT_SUBSCRIPTION = 'default';

/** Every schema version in order; append, never edit, so any older database can be brought up to date. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: (d) => [
      `CREATE TABLE IF NOT EXISTS tidings_message (
         seq ${d.serialPrimaryKey}, topic VARCHAR(200) NOT NULL, id VARCHAR(200) NOT NULL, body TEXT NOT NULL,
         state VARCHAR(16) NOT NULL, deliveries INTEGER NOT NULL DEFAULT 0, available_at BIGINT NOT NULL, created_at BIGINT NOT NULL,
         lease_until BIGINT NULL, lease_token VARCHAR(64) NULL)`,
      `CREATE UNIQUE INDEX IF NOT EXISTS tidings_message_topic_id ON tidings_message (topic, id)`,
      `CREATE INDEX IF NOT EXISTS tidings_message_ready ON tidings_message (topic, state, available_at, seq)`,
      ...idTable('tidings_dedup'),
      ...idTable('tidings_idempotency'),
    ],
  },
  {
    // Why a message was nacked or dead-lettered: the handler's last error, kept with the message.
    version: 2,
    statements: () => [`ALTER TABLE tidings_message ADD COLUMN last_error TEXT NULL`],
    unlessColumn: { table: 'tidings_message', column: 'last_error' },
  },
  {
    // The topic registry: each declared topic's lifecycle, so processes and the CLI never guess it from rows.
    version: 3,
    statements: () => [
      `CREATE TABLE IF NOT EXISTS tidings_topic (name VARCHAR(200) NOT NULL PRIMARY KEY, lifecycle VARCHAR(32) NOT NULL,
         dead_letter VARCHAR(200) NULL, max_deliveries INTEGER NOT NULL, declared_at BIGINT NOT NULL)`,
    ],
  },
  {
    // Message headers (a trace context, a tenant), stored and delivered with the message.
    version: 4,
    statements: () => [`ALTER TABLE tidings_message ADD COLUMN headers TEXT NULL`],
    unlessColumn: { table: 'tidings_message', column: 'headers' },
  },
  {
    // Subscriptions and ordering keys: each row is one subscription's copy, unique per (topic, id, subscription);
    // leases look for ready copies of one subscription, and keyed ones by key in store order.
    version: 5,
    statements: () => [
      `ALTER TABLE tidings_message ADD COLUMN subscription VARCHAR(100) NOT NULL DEFAULT '${DEFAULT_SUBSCRIPTION}'`,
      `ALTER TABLE tidings_message ADD COLUMN ordering_key VARCHAR(200) NULL`,
      `DROP INDEX IF EXISTS tidings_message_ready`,
      `CREATE INDEX IF NOT EXISTS tidings_message_ready ON tidings_message (topic, subscription, state, available_at, seq)`,
      `CREATE INDEX IF NOT EXISTS tidings_message_key ON tidings_message (topic, subscription, ordering_key, seq) WHERE ordering_key IS NOT NULL`,
    ],
    unlessColumn: { table: 'tidings_message', column: 'subscription' },
  },
  {
    // A message is unique per subscription, not per topic; the subscription registry; and every topic known so far
    // given its default subscription, so that every message of an upgraded database reaches it and new ones keep
    // going there. Always run (each statement is idempotent): a schema generator may have made the newest tables,
    // which the first migration then gave the old unique index again.
    version: 6,
    statements: (d) => [
      ...d.dropUnique('tidings_message', 'tidings_message_topic_id'),
      `CREATE UNIQUE INDEX IF NOT EXISTS tidings_message_copy ON tidings_message (topic, id, subscription)`,
      `CREATE TABLE IF NOT EXISTS tidings_subscription (topic VARCHAR(200) NOT NULL, name VARCHAR(100) NOT NULL, dead_letter VARCHAR(200) NULL,
         max_deliveries INTEGER NOT NULL, declared_at BIGINT NOT NULL, PRIMARY KEY (topic, name))`,
      `INSERT INTO tidings_subscription (topic, name, dead_letter, max_deliveries, declared_at)
         SELECT name, '${DEFAULT_SUBSCRIPTION}', dead_letter, max_deliveries, declared_at FROM tidings_topic WHERE true ON CONFLICT (topic, name) DO NOTHING`,
      `INSERT INTO tidings_subscription (topic, name, dead_letter, max_deliveries, declared_at)
         SELECT topic, subscription, NULL, 5, MIN(created_at) FROM tidings_message WHERE true GROUP BY topic, subscription ON CONFLICT (topic, name) DO NOTHING`,
      ...(d.widenColumn ? [d.widenColumn('tidings_idempotency', 'topic', 'VARCHAR(400)')] : []),
    ],
  },
  {
    // How a topic orders keyed messages, so every process declaring it agrees.
    version: 7,
    statements: () => [`ALTER TABLE tidings_topic ADD COLUMN ordering VARCHAR(16) NULL`],
    unlessColumn: { table: 'tidings_topic', column: 'ordering' },
  },
  {
    // An operator's pause, kept with the subscription so every process's consumers honour it.
    version: 8,
    statements: () => [`ALTER TABLE tidings_subscription ADD COLUMN paused_at BIGINT NULL`],
    unlessColumn: { table: 'tidings_subscription', column: 'paused_at' },
  },
];

/** The schema version this code writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;
