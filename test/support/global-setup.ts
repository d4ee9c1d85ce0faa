import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { startLocalPostgres } from '@tidings/example-multi-node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the `postgres` database on the suite's embedded PostgreSQL server. */
    postgresUrl: string;
  }
}

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Builds the packages' dist/, then starts one real PostgreSQL server for the whole run, in a child process (see
 * examples/multi-node/src/postgres-server.ts for why not here); test files make their own databases on it.
 */
export default async function setup(project: TestProject) {
  // Tests that run dist/ (the CLI's bin, the packaging tests) need it built from these sources; turbo's cache makes
  // an unchanged build take a second or two. A nested run (the exit-code test) inherits the variable and skips it,
  // so it never rewrites dist/ under the tests reading it.
  if (!process.env.TIDINGS_DIST_BUILT) {
    execFileSync(join(root, 'node_modules', '.bin', 'turbo'), ['run', 'build', '--output-logs=errors-only'], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    process.env.TIDINGS_DIST_BUILT = '1';
  }
  const server = await startLocalPostgres();
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}
