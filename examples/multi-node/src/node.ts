import { parseArgs } from 'node:util';
import { postgresStorage } from '@tidings/adapter-postgres';
import { Tidings } from '@tidings/core';

/** One job on the shared topic. */
export interface Job {
  n: number;
}

/** The JSON line a node prints when it is done. */
export interface NodeSummary {
  node: string;
  role: 'producer' | 'consumer';
  /** Jobs this node sent that the broker stored (not answered as duplicates). */
  produced: number;
  /** Rows this node committed to the application table: its share of the consumption. */
  consumed: number;
  /** Messages this node leased from the shared topic. */
  leased: number;
  /** Times this node's handler ran, including runs whose transaction rolled back. */
  handlerRuns: number;
  /** Jobs the application table held when the node stopped. */
  tableRows: number;
  ms: number;
}

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.DATABASE_URL },
    name: { type: 'string', default: process.env.NODE_NAME ?? `node-${process.pid}` },
    role: { type: 'string', default: process.env.NODE_ROLE ?? 'producer' },
    jobs: { type: 'string', default: process.env.JOBS ?? '200' },
    from: { type: 'string', default: process.env.PRODUCE_FROM ?? '1' },
    count: { type: 'string', default: process.env.PRODUCE_COUNT },
    peers: { type: 'string', default: process.env.PEERS ?? '1' },
    'work-ms': { type: 'string', default: process.env.WORK_MS ?? '2' },
    'timeout-ms': { type: 'string', default: process.env.TIMEOUT_MS ?? '60000' },
  },
});

function int(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be an integer >= 0, got ${String(value)}`);
  return n;
}

function fail(message: string): never {
  console.error(`node.ts: ${message}`);
  process.exit(2);
}

if (!args.url) fail('needs --url postgres://... (or DATABASE_URL)');
if (args.role !== 'producer' && args.role !== 'consumer') fail(`--role must be producer or consumer, got ${args.role}`);
const url = args.url;
const name = args.name!;
const role = args.role;
const jobs = int('jobs', args.jobs);
const from = int('from', args.from);
const count = role === 'consumer' ? 0 : int('count', args.count ?? String(jobs));
const peers = int('peers', args.peers);
const workMs = int('work-ms', args['work-ms']);
const timeoutMs = int('timeout-ms', args['timeout-ms']);

const started = Date.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const storage = postgresStorage({ url });
const tidings = await Tidings.create({ storage });
const sql = async <R = Record<string, unknown>>(query: string, params: unknown[] = []): Promise<R[]> =>
  (await storage.orm.em.getConnection().execute(query, params, 'all')) as R[];

// Two nodes may start on an empty database at once; the lock makes one create the table while the other waits.
await storage.orm.em.fork().transactional(async (em) => {
  const conn = em.getConnection();
  const tx = em.getTransactionContext();
  await conn.execute(`SELECT pg_advisory_xact_lock(hashtext('tidings-example-multi-node'))`, [], 'all', tx);
  // No unique constraint on job_id on purpose: a job consumed twice must show up as two rows, not as an error.
  await conn.execute(
    `CREATE TABLE IF NOT EXISTS multi_node_jobs (seq bigserial PRIMARY KEY, job_id text NOT NULL, node text NOT NULL, consumed_at timestamptz NOT NULL DEFAULT now())`,
    [],
    'run',
    tx,
  );
  await conn.execute(`CREATE TABLE IF NOT EXISTS multi_node_nodes (node text PRIMARY KEY, ready_at timestamptz NOT NULL DEFAULT now())`, [], 'run', tx);
});

const topic = tidings.topic<Job>('jobs', { semantic: 'exactly-once', scope: 'end-to-end' });

let leased = 0;
tidings.events.on('transition', (e) => {
  if (e.topic === topic.name && e.event === 'LEASE') leased++;
});

// Wait for every peer, so no node drains the topic before the others are listening.
await sql(`INSERT INTO multi_node_nodes (node) VALUES (?) ON CONFLICT (node) DO NOTHING`, [name]);
while (Number((await sql<{ n: string }>(`SELECT count(*) AS n FROM multi_node_nodes`))[0]!.n) < peers) {
  if (Date.now() - started > timeoutMs) fail(`only some of ${peers} nodes checked in within ${timeoutMs} ms`);
  await sleep(20);
}

let handlerRuns = 0;
const consumer = topic.consume(
  async (message, ctx) => {
    handlerRuns++;
    if (workMs > 0) await sleep(workMs);
    // Through the handler's own transaction: this row, the idempotency record and `consumed` commit together.
    await ctx.em.getConnection().execute(`INSERT INTO multi_node_jobs (job_id, node) VALUES (?, ?)`, [message.id, name], 'run', ctx.em.getTransactionContext());
  },
  { concurrency: 4 },
);

let produced = 0;
for (let start = from; start < from + count; start += 50) {
  const batch = Array.from({ length: Math.min(50, from + count - start) }, (_, i) => ({ n: start + i }));
  const acks = await topic.sendMany(batch, { id: (job) => `job-${job.n}` });
  produced += acks.filter((a) => !a.duplicate).length;
}

const rows = async () => Number((await sql<{ n: string }>(`SELECT count(DISTINCT job_id) AS n FROM multi_node_jobs`))[0]!.n);
let done = false;
while (!(done = (await rows()) >= jobs) && Date.now() - started < timeoutMs) await sleep(25);

await consumer.stop();
const [mine] = await sql<{ n: string }>(`SELECT count(*) AS n FROM multi_node_jobs WHERE node = ?`, [name]);
const summary: NodeSummary = {
  node: name,
  role,
  produced,
  consumed: Number(mine!.n),
  leased,
  handlerRuns,
  tableRows: await rows(),
  ms: Date.now() - started,
};
await tidings.close();
console.log(JSON.stringify(summary));
if (!done) {
  console.error(`node.ts: ${name} gave up after ${timeoutMs} ms with ${summary.tableRows} of ${jobs} jobs in the table`);
  process.exitCode = 1;
}
