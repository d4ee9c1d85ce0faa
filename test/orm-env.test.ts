import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

// An application's MIKRO_ORM_* variables and .env configure the application's MikroORM, never the one Tidings opens itself.
describe('storage that opens its own MikroORM ignores MIKRO_ORM_* variables and .env', () => {
  let app: string;
  let cwd: string;
  const saved: Record<string, string | undefined> = {};
  /** Sets a variable for this test only; afterEach puts back what was there. */
  const setEnv = (key: string, value: string) => {
    if (!(key in saved)) saved[key] = process.env[key];
    process.env[key] = value;
  };

  beforeEach(() => {
    app = mkdtempSync(join(tmpdir(), 'tidings-orm-env-'));
    cwd = process.cwd();
    process.chdir(app);
    // MikroORM 6 reads .env from the working folder, or the file MIKRO_ORM_ENV names.
    writeFileSync(join(app, '.env'), `MIKRO_ORM_DB_NAME=${join(app, 'from-dotenv.db')}\nMIKRO_ORM_CLIENT_URL=postgres://app:pw@127.0.0.1:9/from_dotenv\n`);
    delete saved.MIKRO_ORM_ENV;
  });

  afterEach(() => {
    process.chdir(cwd);
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
      delete saved[key];
    }
    rmSync(app, { recursive: true, force: true });
  });

  /** Sends one message through `storage` and closes it. */
  async function sendOne(storage: StorageAdapter<any>, topic: string): Promise<void> {
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
    await tidings.topic<{ n: number }>(topic, { semantic: 'at-least-once' }).send({ n: 1 });
    await tidings.close();
  }

  it('sqliteStorage({ file }) writes to its file, not where MIKRO_ORM_DB_NAME or .env point', async () => {
    setEnv('MIKRO_ORM_DB_NAME', join(app, 'from-env.db'));
    const file = join(app, 'tidings', 'own.db');
    await sendOne(sqliteStorage({ file }), 'env.sqlite');
    const db = new Database(file, { readonly: true });
    const rows = db.prepare('SELECT topic FROM tidings_message').all();
    db.close();
    expect(rows).toEqual([{ topic: 'env.sqlite' }]);
    expect(existsSync(join(app, 'from-env.db'))).toBe(false);
    expect(readdirSync(app).sort()).toEqual(['.env', 'tidings']);
  });

  it('sqliteStorage({ file }) does not read the .env file MIKRO_ORM_ENV names, nor copy it into process.env', async () => {
    const named = join(app, 'named.env');
    writeFileSync(named, `MIKRO_ORM_DB_NAME=${join(app, 'from-named.db')}\n`);
    setEnv('MIKRO_ORM_ENV', named);
    const file = join(app, 'own.db');
    await sendOne(sqliteStorage({ file }), 'env.named');
    expect(existsSync(join(app, 'from-named.db'))).toBe(false);
    expect(existsSync(file)).toBe(true);
    expect(process.env.MIKRO_ORM_DB_NAME).toBeUndefined();
    expect(process.env.MIKRO_ORM_CLIENT_URL).toBeUndefined();
  });

  it('postgresStorage({ url }) connects to its URL, not where MIKRO_ORM_CLIENT_URL or MIKRO_ORM_DB_NAME point', async () => {
    const url = await freshPostgresDatabase('orm_env');
    setEnv('MIKRO_ORM_CLIENT_URL', 'postgres://app:pw@127.0.0.1:9/elsewhere');
    setEnv('MIKRO_ORM_DB_NAME', 'elsewhere');
    await sendOne(postgresStorage({ url, connectTimeoutMs: 2_000 }), 'env.postgres');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      expect((await client.query('SELECT topic FROM tidings_message')).rows).toEqual([{ topic: 'env.postgres' }]);
    } finally {
      await client.end();
    }
  });
});
