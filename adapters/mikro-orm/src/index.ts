export { MikroOrmStorage, type MikroOrmStorageOptions, type SqlDialect } from './storage.js';
export { initOwnOrm } from './own-orm.js';
export { MIGRATIONS, SCHEMA_VERSION, type Migration, type SchemaDialect } from './schema.js';
export { MikroOrmIdempotencyStore } from './idempotency.js';
export { SchemaError, toTidingsError, isTransient } from './errors.js';
export { tidingsEntities, MessageEntity, DedupEntity, IdempotencyEntity, MetaEntity, TopicEntity, type MessageRow, type TopicRow, type IdRecordRow, type MetaRow } from './entities.js';
