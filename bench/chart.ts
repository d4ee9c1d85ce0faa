// npm run bench:chart -- results.json [more.json …] [--out FILE]: the SVG bar chart of saved --json runs (bench,
// peers or both), written to docs/img/benchmarks.svg unless --out says otherwise.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Results } from './rows.js';
import { chartSvg } from './svg.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const at = args.indexOf('--out');
const out = at >= 0 ? resolve(args[at + 1] ?? '') : resolve(root, 'docs/img/benchmarks.svg');
const files = args.filter((_, i) => at < 0 || (i !== at && i !== at + 1));
if (files.length === 0 || (at >= 0 && !args[at + 1])) {
  console.error(
    'usage: npm run bench:chart -- results.json [more.json …] [--out FILE]  (files written by npm run bench -- --json or npm run bench:peers -- --json)',
  );
  process.exit(2);
}
const runs = files.map((f) => {
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as Results;
  } catch (error) {
    // `npm run` prints its own header on stdout: the JSON is clean with `npm run -s`.
    console.error(`${f} is not JSON (${(error as Error).message}); save it with npm run -s bench -- --json > ${f}`);
    process.exit(2);
  }
});
for (const [i, r] of runs.entries()) {
  if ((r.kind !== 'bench' && r.kind !== 'peers') || !Array.isArray(r.rows)) {
    console.error(`${files[i]} is not the --json output of npm run bench or npm run bench:peers`);
    process.exit(2);
  }
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, chartSvg(runs));
console.log(`wrote ${out}`);
