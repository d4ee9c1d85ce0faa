import type { MigrationObject } from '@mikro-orm/core';
import { Migration as MikroOrmMigration } from '@mikro-orm/migrations';
import { IrreversibleMigrationError } from './errors.js';
import { applyMigration } from './migrator.js';
import { MIGRATIONS, type Migration, type SchemaDialect } from './schema.js';

/**
 * Tidings' migrations as MikroORM migrations, for an application whose MikroORM migrator manages its schema:
 * `migrations: { migrationsList: [...tidingsMigrations(sqliteDialect), ...yours] }`. Each records the schema
 * version as Tidings does, so a Tidings storage opening the database afterwards runs no DDL, and each is skipped
 * where Tidings (or an earlier run) already brought the database that far.
 */
export function tidingsMigrations(dialect: SchemaDialect, migrations: readonly Migration[] = MIGRATIONS): MigrationObject[] {
  return migrations.map((migration) => {
    const name = `tidings_v${migration.version}`;
    return {
      name,
      class: class extends MikroOrmMigration {
        override async up(): Promise<void> {
          const run = async (sql: string, params?: unknown[]) => (await this.execute(sql, params)) as Record<string, unknown>[];
          await applyMigration(dialect, migration, run, true);
        }

        override down(): Promise<void> {
          // Tidings' tables only ever gain tables, columns and indexes; dropping them would lose messages.
          throw new IrreversibleMigrationError(
            `Tidings' migration ${name} cannot be reverted: it only adds to tables that hold messages, and undoing it would lose them.`,
          );
        }
      },
    };
  });
}
