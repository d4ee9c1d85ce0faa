import type { Output } from './commands.js';
import { openDatabase } from './database.js';

/** The port `tidings dashboard` listens on unless told otherwise. */
export const DEFAULT_DASHBOARD_PORT = 7780;

/** Options of `tidings dashboard`. */
export interface DashboardCommandOptions {
  db?: string;
  /** Default 7780; 0 for any free port. */
  port?: number | string;
  /** Default 127.0.0.1; anything else needs `token`. */
  host?: string;
  token?: string;
  /** Host names to answer to besides loopback names and IP addresses (`.example.com` for a domain's); see `createDashboard`. */
  allowedHosts?: string[];
  /** Resolves when the dashboard should stop (default: on SIGINT or SIGTERM). */
  until?: Promise<unknown>;
}

/** Serves the dashboard of a database until `until` (SIGINT or SIGTERM by default); prints its URL, resolves to the exit code. */
export async function serveDashboard(options: DashboardCommandOptions, output: Output): Promise<number> {
  // Loaded only when asked for, so the other commands start without the dashboard's dependencies.
  const { createDashboard } = await import('@tidings/dashboard');
  const database = await openDatabase(options.db);
  let dashboard: Awaited<ReturnType<typeof createDashboard>> | undefined;
  try {
    dashboard = createDashboard({ storage: database.storage, token: options.token, allowedHosts: options.allowedHosts, title: `Tidings: ${database.name}` });
    const port = typeof options.port === 'string' && /^\s*\d+\s*$/.test(options.port) ? Number(options.port) : (options.port ?? DEFAULT_DASHBOARD_PORT);
    const { url } = await dashboard.listen({ port: port as number, host: options.host });
    output.out(`Dashboard of ${database.target} at ${url}${options.token === undefined ? '' : ' (sign in with the token)'}`);
    output.out(`Metrics at ${url}metrics. Stop with Ctrl-C.`);
    await (options.until ?? signalled());
    output.err('tidings: stopping the dashboard');
    return 0;
  } finally {
    await dashboard?.close();
    await database.close();
  }
}

/** Resolves on the first SIGINT or SIGTERM, then stops listening for them, so a second Ctrl-C kills as usual. */
function signalled(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
