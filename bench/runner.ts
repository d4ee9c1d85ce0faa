// Runs scenarios one after another. A scenario compared with a raw driver has that baseline run again just before it,
// so each ratio divides two figures measured a moment apart on a shared machine; a baseline's row is the median of its
// runs. A scenario that fails becomes a failure, not a figure.
import type { Scenario } from './catalog.js';
import type { BenchContext } from './context.js';
import type { Progress } from './output.js';
import { median, round } from './stats.js';
import type { Failure, Measured, Row } from './rows.js';

/** How many steps `runAll` takes for `scenarios` (each, and each raw baseline run before one). */
export function stepsOf(scenarios: readonly Scenario[], all: readonly Scenario[]): number {
  return scenarios.reduce((n, s) => n + 1 + (all.find((b) => b.name === s.baseline)?.system === 'raw' ? 1 : 0), 0);
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Runs `scenarios` in order (`all` is where their baselines are found), drawing progress; the rows and the failures. */
export async function runAll(
  ctx: BenchContext,
  scenarios: readonly Scenario[],
  all: readonly Scenario[],
  progress: Progress,
): Promise<{ rows: Row[]; failures: Failure[] }> {
  const rows: Row[] = [];
  const failures: Failure[] = [];
  /** Each raw baseline's runs, and where its row goes (before the first row compared with it). */
  const baselineRuns = new Map<string, { at: number; runs: Measured[] }>();
  const placed: Array<Row | string> = [];
  for (const s of scenarios) {
    const base = all.find((b) => b.name === s.baseline);
    let against: number | undefined;
    if (base?.system === 'raw') {
      progress.step(`${base.name} (before ${s.name})`);
      if (!baselineRuns.has(base.name)) {
        baselineRuns.set(base.name, { at: placed.length, runs: [] });
        placed.push(base.name);
      }
      try {
        const m = await base.run(ctx);
        baselineRuns.get(base.name)!.runs.push(m);
        against = m.messagesPerSecond;
      } catch (error) {
        failures.push({ name: base.name, error: errorText(error) });
      }
    } else if (s.baseline) {
      against = rows.find((r) => r.name === s.baseline)?.messagesPerSecond;
    }
    progress.step(s.name);
    try {
      const m = await s.run(ctx);
      const row: Row = {
        name: s.name,
        system: s.system,
        ...m,
        messagesPerSecond: Math.round(m.messagesPerSecond),
        baseline: s.baseline ?? null,
        ratio: null,
      };
      // A fixed-rate run is divided by its schedule.
      const divisor = against ?? (base ? undefined : m.scheduledPerSecond);
      row.ratio = divisor ? round(m.messagesPerSecond / divisor, 3) : null;
      rows.push(row);
      placed.push(row);
    } catch (error) {
      failures.push({ name: s.name, error: errorText(error) });
    }
  }
  const ordered = placed.flatMap((p) => {
    if (typeof p !== 'string') return [p];
    const { runs } = baselineRuns.get(p)!;
    if (runs.length === 0) return [];
    const perSecond = runs.map((m) => Math.round(m.messagesPerSecond));
    return [
      { name: p, system: 'raw', ...runs[0]!, messagesPerSecond: Math.round(median(perSecond)), baseline: null, ratio: null, rounds: perSecond } satisfies Row,
    ];
  });
  return { rows: ordered, failures };
}
