export { MikroOrmStorage, SCHEMA_VERSION, type MikroOrmStorageOptions, type SqlDialect } from './storage.js';
export { MikroOrmIdempotencyStore } from './idempotency.js';
export { SchemaError, toTidingsError, isTransient } from './errors.js';
export { tidingsEntities, MessageEntity, DedupEntity, IdempotencyEntity, MetaEntity, type MessageRow, type IdRecordRow, type MetaRow } from './entities.js';
