// The embedded PostgreSQL server a run shares (started on first use), with a fresh database for each scenario run.
import pg from 'pg';
import { startLocalPostgres, type LocalPostgres } from '@tidings/example-multi-node';

let n = 0;

/** A database of its own for one scenario run; `drop()` removes it. */
export interface Database {
  url: string;
  drop(): Promise<void>;
}

/** One embedded PostgreSQL server for the whole run, started when a scenario first asks for a database. */
export class PostgresServer {
  private server?: Promise<LocalPostgres>;

  /** A new empty database on the server (started now if it is not yet). */
  async database(prefix: string): Promise<Database> {
    this.server ??= startLocalPostgres();
    const base = (await this.server).url;
    const name = `${prefix}_${++n}_${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
    await admin(base, `CREATE DATABASE ${name}`);
    return { url: base.replace(/\/[^/]*$/, `/${name}`), drop: () => admin(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
  }

  /** Stops the server if it was started. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    // A server that never started has nothing to stop.
    if (server) await (await server.catch(() => undefined))?.stop();
  }
}

async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
