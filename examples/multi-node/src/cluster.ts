import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { NodeSummary } from './node.js';

/** What a run of several node processes on one database is asked to do. */
export interface ClusterOptions {
  /** The database all nodes share. */
  url: string;
  /** Jobs in all: the nodes split the producing between them, contiguous ids `job-1`…`job-<jobs>`. */
  jobs: number;
  /** Node names; each one is a separate Node.js process (default `node-a`, `node-b`). */
  nodes?: string[];
  /** Simulated work per job in ms, so no node finishes the topic alone. */
  workMs?: number;
  timeoutMs?: number;
}

/** How one node process ended. */
export interface NodeRun {
  summary?: NodeSummary;
  code: number | null;
  stderr: string;
}

const packageDir = fileURLToPath(new URL('..', import.meta.url));

/** Spawns one `src/node.ts` process per node, each producing its share, and waits for all of them. */
export function runCluster(options: ClusterOptions): Promise<NodeRun[]> {
  const nodes = options.nodes ?? ['node-a', 'node-b'];
  const share = Math.ceil(options.jobs / nodes.length);
  return Promise.all(
    nodes.map((name, i) => {
      const from = 1 + i * share;
      const count = Math.max(0, Math.min(share, options.jobs - i * share));
      return runNode(options.url, [
        ...['--name', name, '--role', 'producer', '--jobs', String(options.jobs)],
        ...['--from', String(from), '--count', String(count), '--peers', String(nodes.length)],
        ...['--work-ms', String(options.workMs ?? 2), '--timeout-ms', String(options.timeoutMs ?? 60_000)],
      ]);
    }),
  );
}

function runNode(url: string, args: string[]): Promise<NodeRun> {
  return new Promise((resolve, reject) => {
    // The same command a user would run: the package's TypeScript through tsx, resolving @tidings/* to their sources.
    const child = spawn(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', 'src/node.ts', '--url', url, ...args], {
      cwd: packageDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => {
      const line = stdout
        .trim()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      resolve({ summary: line ? (JSON.parse(line) as NodeSummary) : undefined, code, stderr });
    });
  });
}

/** Totals over every node and the application table: what the example promises is duplicates = 0 and lost = 0. */
export interface ClusterTotals {
  jobs: number;
  produced: number;
  consumed: number;
  leased: number;
  handlerRuns: number;
  /** Rows in the application table beyond one per distinct job. */
  duplicates: number;
  /** Jobs made that never reached the application table. */
  lost: number;
}

/** Adds up the node summaries and checks them against the table's own counts. */
export function totals(jobs: number, runs: NodeRun[], table: { rows: number; distinct: number }): ClusterTotals {
  const sum = (k: 'produced' | 'consumed' | 'leased' | 'handlerRuns') => runs.reduce((n, r) => n + (r.summary?.[k] ?? 0), 0);
  return {
    jobs,
    produced: sum('produced'),
    consumed: sum('consumed'),
    leased: sum('leased'),
    handlerRuns: sum('handlerRuns'),
    duplicates: table.rows - table.distinct,
    lost: jobs - table.distinct,
  };
}

/** Counts rows and distinct jobs in the application table the nodes wrote. */
export async function readTable(url: string): Promise<{ rows: number; distinct: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ rows: string; distinct: string }>(`SELECT count(*) AS rows, count(DISTINCT job_id) AS distinct FROM multi_node_jobs`);
    return { rows: Number(rows[0]!.rows), distinct: Number(rows[0]!.distinct) };
  } finally {
    await client.end();
  }
}

/** Creates a database on the server at `serverUrl` (any database of it) and returns the new one's URL. */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
