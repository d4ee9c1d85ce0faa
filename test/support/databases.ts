import pg from 'pg';
import { inject } from 'vitest';

let n = 0;

/** A new, empty database on the suite's PostgreSQL server; returns its URL. */
export async function freshPostgresDatabase(prefix = 'db'): Promise<string> {
  const base = inject('postgresUrl');
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${++n}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return base.replace(/\/[^/]*$/, `/${name}`);
}
