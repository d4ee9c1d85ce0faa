import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the `postgres` database on the suite's embedded PostgreSQL server. */
    postgresUrl: string;
  }
}

const script = fileURLToPath(new URL('./postgres-server.ts', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Builds the packages' dist/, then starts one real PostgreSQL server for the whole run, in a child process (see
 * postgres-server.ts for why not here); test files make their own databases on it.
 */
export default async function setup(project: TestProject) {
  // Tests that run dist/ (the CLI's bin, the packaging tests) need it built from these sources; turbo's cache makes
  // an unchanged build take a second or two. A nested run (the exit-code test) inherits the variable and skips it,
  // so it never rewrites dist/ under the tests reading it.
  if (!process.env.TIDINGS_DIST_BUILT) {
    execFileSync(join(root, 'node_modules', '.bin', 'turbo'), ['run', 'build', '--output-logs=errors-only'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    process.env.TIDINGS_DIST_BUILT = '1';
  }
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /^url (\S+)$/m.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code, signal) => reject(new Error(`the test PostgreSQL server exited (${signal ?? code}) before it was ready`)));
  });
  project.provide('postgresUrl', url);
  return async () => {
    child.stdin!.end();
    await exited;
  };
}
