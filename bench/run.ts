// npm run bench: what users run, measured against raw drivers in this same process. See docs/benchmarks.md.
import { join } from 'node:path';
import { processArgs } from './args.js';
import { catalog } from './catalog.js';
import { BenchContext, countsFor } from './context.js';
import { stepCosts } from './costs.js';
import { Progress, machine, printTable } from './output.js';
import type { Results } from './rows.js';
import { runAll, stepsOf } from './runner.js';
import { judgeTargets } from './targets.js';

const args = processArgs();
const all = catalog();
const only = args.only;
const matched = all.filter((s) => s.system !== 'raw' && (!only || s.name.toLowerCase().includes(only)));
// A row compared with another Tidings row (the plugin's) brings that row along.
const chosen = all.filter((s) => matched.includes(s) || matched.some((m) => m.baseline === s.name && s.system === 'tidings'));
const withCosts = !only || 'step costs'.includes(only);
if (chosen.length === 0 && !withCosts) {
  console.error(`no scenario matches --only ${only}; the scenarios are:\n${all.map((s) => `  ${s.name}`).join('\n')}`);
  process.exit(2);
}
const ctx = new BenchContext(countsFor(args.quick, args.messages), args.quick);
const progress = new Progress(stepsOf(chosen, all) + (withCosts ? 1 : 0));
let results: Results;
try {
  const { rows, failures } = await runAll(ctx, chosen, all, progress);
  let costsMicroseconds: Record<string, number> | undefined;
  if (withCosts) {
    progress.step('step costs');
    costsMicroseconds = await stepCosts(join(ctx.dir, 'steps.db'));
  }
  progress.finish();
  // The targets these rows answer; those that compare with a peer need npm run bench:peers.
  const targets = judgeTargets(rows).filter((t) => t.met !== undefined);
  results = {
    kind: 'bench',
    date: new Date().toISOString(),
    machine: machine(),
    quick: args.quick,
    rows,
    failures,
    targets,
    ...(costsMicroseconds && { costsMicroseconds }),
  };
} finally {
  await ctx.close();
}
const c = ctx.counts;
if (args.json) console.log(JSON.stringify(results, null, 2));
else {
  printTable(
    results,
    `${args.quick ? 'QUICK RUN (smoke test, not a measurement): ' : ''}${c.batch} messages of ~256 bytes per end-to-end scenario, ${c.single} single sends, ` +
      `${c.concurrent} sends by ${c.callers} callers, ${c.rate}/s for ${c.rateSeconds} s, backlogs of ${c.backlogs.join(' and ')}`,
  );
}
if (results.failures.length) {
  for (const f of results.failures) console.error(`FAILED  ${f.name}: ${f.error}`);
  process.exitCode = 1;
}
