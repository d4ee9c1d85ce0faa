import type { TestProject } from 'vitest/node';
import { startPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the `postgres` database on the suite's embedded PostgreSQL server. */
    postgresUrl: string;
  }
}

/** One real PostgreSQL server for the whole run; test files make their own databases on it. */
export default async function setup(project: TestProject) {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}
