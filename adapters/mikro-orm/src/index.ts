export { MikroOrmStorage, type MikroOrmStorageParts } from './storage.js';
export { sqlStorage, type MikroOrmStorageOptions } from './sql-storage.js';
export { SqlConnection, WriteGroup, type SqlConnectionOptions, type SqlRow, type SqlTx, type SyncStatements } from './connection.js';
export type { SqlDialect, SqlErrorKind } from './dialect.js';
export { initOwnOrm } from './own-orm.js';
export { MIGRATIONS, SCHEMA_VERSION, type Migration, type SchemaDialect } from './schema.js';
export { MikroOrmIdempotencyStore } from './idempotency.js';
export { SchemaError, IrreversibleMigrationError, ForeignEntityManagerError, exceptionKind, toTidingsError } from './errors.js';
export {
  tidingsEntities,
  MessageEntity,
  DedupEntity,
  IdempotencyEntity,
  MetaEntity,
  TopicEntity,
  SubscriptionEntity,
  type MessageRow,
  type TopicRow,
  type SubscriptionRow,
  type IdRecordRow,
  type MetaRow,
} from './entities.js';
