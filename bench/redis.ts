// A throwaway redis-server for the BullMQ runs: 127.0.0.1 on a free port, a temp folder, AOF with fsync every second.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** How to get redis-server when it is missing. */
export const REDIS_INSTALL = 'redis-server is not on PATH. Install it, e.g. on Debian or Ubuntu: sudo apt-get install -y redis-server (then run this again).';

/** The redis-server executable on PATH, if any. */
export function redisServerPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, 'redis-server');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // Not in this folder.
    }
  }
  return undefined;
}

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

/** A running redis-server; `stop()` ends it and removes its folder. */
export interface LocalRedis {
  host: string;
  port: number;
  version: string;
  stop(): Promise<void>;
}

/** Starts redis-server with `appendonly yes` and `appendfsync everysec` (its other settings are its defaults). */
export async function startRedis(executable: string): Promise<LocalRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-redis-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--daemonize', 'no'];
  const child = spawn(executable, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Should this process end without stop(), the server ends with it.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  let log = '';
  try {
    const version = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within 15 s:\n${log}`)), 15_000);
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        if (/Ready to accept connections/.test(log)) {
          clearTimeout(timer);
          resolve(/version=([\d.]+)/.exec(log)?.[1] ?? 'unknown');
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}) before it was ready:\n${log}`));
      });
    });
    child.stdout.removeAllListeners('data').resume();
    child.stderr.removeAllListeners('data').resume();
    return {
      host: '127.0.0.1',
      port,
      version,
      async stop() {
        child.kill('SIGTERM');
        await exited;
        process.off('exit', kill);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    kill();
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
