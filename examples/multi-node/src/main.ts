import pg from 'pg';
import { createDatabase, readTable, runCluster, totals } from './cluster.js';
import { startLocalPostgres, type LocalPostgres } from './postgres.js';

const jobs = Number(process.env.JOBS ?? 200);
let local: LocalPostgres | undefined;
let serverUrl = process.env.DATABASE_URL;
if (!serverUrl) {
  local = await startLocalPostgres();
  serverUrl = local.url;
}
// Job ids are fixed (job-1…), so a rerun on an old database would be answered as duplicates: each run gets its own.
const database = `tidings_multi_node_${Date.now().toString(36)}`;
const url = await createDatabase(serverUrl, database);

let failed = false;
try {
  console.log(`${local ? 'embedded PostgreSQL' : 'DATABASE_URL'}, database ${database}: 2 node processes, ${jobs} jobs on topic "jobs" (exactly-once)`);
  const runs = await runCluster({ url, jobs });
  for (const run of runs) {
    const s = run.summary;
    if (!s || run.code !== 0) {
      failed = true;
      console.error(`a node exited with code ${run.code}:\n${run.stderr}`);
      continue;
    }
    console.log(`${s.node.padEnd(8)} produced ${s.produced}  leased ${s.leased}  consumed ${s.consumed}  handler runs ${s.handlerRuns}  (${s.ms} ms)`);
  }
  const t = totals(jobs, runs, await readTable(url));
  console.log(`jobs made ${t.produced}, consumed ${t.consumed}, duplicates ${t.duplicates}, lost ${t.lost}`);
  if (t.duplicates !== 0 || t.lost !== 0 || t.produced !== jobs) failed = true;
} finally {
  if (local) {
    await local.stop();
  } else {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(database)}`).finally(() => client.end());
  }
}
if (failed) {
  console.error('FAILED: a node failed, or a job was lost or consumed twice');
  process.exitCode = 1;
}
