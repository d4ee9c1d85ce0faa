import { SqlConnection, type SqlConnectionOptions } from './connection.js';
import { MikroOrmIdempotencyStore } from './idempotency.js';
import { MIGRATIONS, type Migration } from './schema.js';
import { MikroOrmStorage } from './storage.js';

/** How a driver package builds the shared storage. */
export interface MikroOrmStorageOptions extends SqlConnectionOptions {
  /**
   * @internal The schema steps to bring a database to (default `MIGRATIONS`); tests add one to rehearse an upgrade.
   */
  migrations?: readonly Migration[];
}

/** The storage a SQL driver package hands out: one connection, shared by the storage and its idempotency store. */
export function sqlStorage(options: MikroOrmStorageOptions): MikroOrmStorage {
  const connection = new SqlConnection(options);
  return new MikroOrmStorage({ connection, idempotency: new MikroOrmIdempotencyStore(connection), migrations: options.migrations ?? MIGRATIONS });
}
