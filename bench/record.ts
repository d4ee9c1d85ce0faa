// npm run bench:record: runs the bench and the peers (which reads the bench's rows for its Tidings-only targets),
// saves both --json runs in bench/results/, redraws docs/img/benchmarks.svg and rewrites the generated sections of
// docs/benchmarks.md (machine, tables, targets). Extra arguments (e.g. --quick) go to both runs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { recordingMachineMarkdown, replaceSection, rowsMarkdown, targetsMarkdown } from './report.js';
import type { Results } from './rows.js';
import { chartSvg } from './svg.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = join(root, 'bench', 'results');
const extra = process.argv.slice(2);
mkdirSync(dir, { recursive: true });

/** Runs a bench script with --json, saves its stdout and returns the results (its exit code aside). */
function record(script: string, file: string, args: string[]): { results: Results; ok: boolean } {
  const run = spawnSync(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', `bench/${script}`, '--json', ...args, ...extra], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  if (!run.stdout.trim()) {
    console.error(`bench/${script} printed no results (exit ${run.status})`);
    process.exit(1);
  }
  writeFileSync(join(dir, file), run.stdout);
  return { results: JSON.parse(run.stdout) as Results, ok: run.status === 0 };
}

const bench = record('run.ts', 'bench.json', []);
const peers = record('peers.ts', 'peers.json', ['--bench', join(dir, 'bench.json')]);
writeFileSync(join(root, 'docs', 'img', 'benchmarks.svg'), chartSvg([bench.results, peers.results]));

const docFile = join(root, 'docs', 'benchmarks.md');
let doc = readFileSync(docFile, 'utf8');
doc = replaceSection(
  doc,
  'machine',
  `${recordingMachineMarkdown(bench.results, peers.results)}\n- recorded ${bench.results.date.slice(0, 16).replace('T', ' ')} UTC${bench.results.quick ? ' (QUICK RUN: not a measurement)' : ''}`,
);
doc = replaceSection(doc, 'targets', targetsMarkdown(peers.results.targets ?? []));
doc = replaceSection(doc, 'peers', rowsMarkdown(peers.results));
doc = replaceSection(doc, 'bench', rowsMarkdown(bench.results));
writeFileSync(docFile, doc);
console.error(`wrote bench/results/bench.json, bench/results/peers.json, docs/img/benchmarks.svg and docs/benchmarks.md`);
if (!bench.ok || !peers.ok) {
  console.error('a run failed: see its FAILED lines above and in the tables');
  process.exitCode = 1;
}
