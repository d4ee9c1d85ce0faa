// Runs scenarios one after another, each baseline once before the first scenario compared with it; a scenario
// that fails becomes a failure, not a figure.
import type { Scenario } from './catalog.js';
import type { BenchContext } from './context.js';
import type { Progress } from './output.js';
import { round } from './stats.js';
import type { Failure, Measured, Row } from './rows.js';

/** `chosen` with the scenarios they are compared with (from `all`) put before them, each once. */
export function withBaselines(chosen: readonly Scenario[], all: readonly Scenario[]): Scenario[] {
  const out: Scenario[] = [];
  const add = (s: Scenario) => {
    if (out.includes(s)) return;
    const baseline = all.find((b) => b.name === s.baseline);
    if (baseline) add(baseline);
    out.push(s);
  };
  for (const s of chosen) add(s);
  return out;
}

/** A row from a scenario's measurement and its baseline's row (if it ran; a fixed-rate run is divided by its schedule). */
export function toRow(s: Scenario, m: Measured, baseline?: Row): Row {
  const against = baseline?.messagesPerSecond ?? m.scheduledPerSecond;
  return {
    name: s.name,
    system: s.system,
    ...m,
    messagesPerSecond: Math.round(m.messagesPerSecond),
    baseline: s.baseline ?? null,
    ratio: against ? round(m.messagesPerSecond / against, 3) : null,
  };
}

/** Runs `scenarios` in order, drawing progress; the rows of those that finished and the failures of the rest. */
export async function runAll(ctx: BenchContext, scenarios: readonly Scenario[], progress: Progress): Promise<{ rows: Row[]; failures: Failure[] }> {
  const rows: Row[] = [];
  const failures: Failure[] = [];
  for (const s of scenarios) {
    progress.step(s.name);
    try {
      const m = await s.run(ctx);
      rows.push(toRow(s, m, rows.find((r) => r.name === s.baseline)));
    } catch (error) {
      failures.push({ name: s.name, error: error instanceof Error ? error.message : String(error) });
    }
  }
  return { rows, failures };
}
