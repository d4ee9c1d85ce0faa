// The benchmark chart: horizontal bars of messages/s (log scale), each Tidings row beside what it is compared with.
import type { Results, Row, System } from './rows.js';

const COLORS: Record<System, string> = {
  tidings: '#2563eb',
  raw: '#9ca3af',
  bullmq: '#dc2626',
  'bullmq-postgres': '#f87171',
  'graphile-worker': '#d97706',
  'pg-boss': '#059669',
};
/** The legend, in this order, of the systems a chart shows. */
const LEGEND: Array<[System, string]> = [
  ['tidings', 'Tidings'],
  ['bullmq', 'BullMQ (Redis)'],
  ['bullmq-postgres', 'BullMQ (PostgreSQL)'],
  ['graphile-worker', 'Graphile Worker (PostgreSQL)'],
  ['pg-boss', 'pg-boss (PostgreSQL)'],
  ['raw', 'raw driver, same process'],
];

const WIDTH = 1000;
const LABEL_END = 540;
const BAR_START = 550;
const BAR_SPAN = 340;
const BAR = 13;
const STEP = 17;

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const count = (n: number) => Math.round(n).toLocaleString('en');

/** A section of the chart: a heading and groups of bars, each group a row compared with and the rows compared with it. */
interface Section {
  heading: string;
  groups: Row[][];
}

/** Peers: each peer row the others are divided by, with those rows first (Tidings', then other peers'). */
function peerGroups(results: Results): Row[][] {
  const peers = results.rows.filter((r) => r.system !== 'tidings' && r.system !== 'raw' && r.baseline === null && !r.scheduledPerSecond);
  return peers.map((p) => [...results.rows.filter((r) => r.baseline === p.name), p]);
}

/** The bench: each baseline row with the rows compared with it; fixed-rate rows (their messages/s is the schedule) left out. */
function benchGroups(results: Results): Row[][] {
  const roots = results.rows.filter((r) => r.baseline === null);
  return roots.map((b) => [b, ...results.rows.filter((r) => r.baseline === b.name && !r.scheduledPerSecond)]).filter((g) => g.length > 1);
}

/** The SVG document for one or more saved `--json` runs (bench, peers or both). */
export function chartSvg(runs: readonly Results[]): string {
  if (runs.length === 0) throw new Error('chartSvg needs at least one run');
  const sections: Section[] = [];
  const peers = runs.find((r) => r.kind === 'peers');
  const bench = runs.find((r) => r.kind === 'bench');
  if (peers) {
    const rounds = Math.max(1, ...peers.rows.map((r) => r.rounds?.length ?? 1));
    sections.push({ heading: `Tidings beside its peers: median of ${rounds} round${rounds > 1 ? 's' : ''}, systems alternating`, groups: peerGroups(peers) });
  }
  if (bench) sections.push({ heading: 'Tidings against raw drivers in the same process (npm run bench)', groups: benchGroups(bench) });
  const values = sections.flatMap((s) => s.groups.flat().map((r) => r.messagesPerSecond)).filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...values, 1_000)));
  const hi = Math.ceil(Math.log10(Math.max(...values, 10_000)));
  const x = (v: number) => BAR_START + (BAR_SPAN * (Math.log10(Math.max(v, 10 ** lo)) - lo)) / (hi - lo);

  const latest = runs
    .map((r) => r.date)
    .sort()
    .at(-1)!;
  const m = runs[0]!.machine;
  const quick = runs.some((r) => r.quick);
  const out: string[] = [];
  let y = 28;
  out.push(
    `<text x="16" y="${y}" font-size="17" font-weight="bold">Tidings benchmarks, ${escape(latest.slice(0, 10))}${quick ? ' (QUICK RUN: not a measurement)' : ''}</text>`,
  );
  y += 20;
  out.push(
    `<text x="16" y="${y}" font-size="12" fill="#374151">${escape(`${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, Node ${m.node}, ${m.platform}, disk ${m.disk}; messages/s of ~256-byte messages, log scale`)}</text>`,
  );
  y += 22;
  let lx = 16;
  const shown = new Set(runs.flatMap((r) => r.rows.map((row) => row.system)));
  for (const [system, label] of LEGEND.filter(([system]) => shown.has(system))) {
    out.push(
      `<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${COLORS[system]}"/><text x="${lx + 17}" y="${y}" font-size="12">${escape(label)}</text>`,
    );
    lx += 40 + label.length * 7;
  }
  y += 14;
  for (const section of sections) {
    y += 24;
    out.push(`<text x="16" y="${y}" font-size="14" font-weight="bold">${escape(section.heading)}</text>`);
    y += 10;
    const top = y;
    const lines: string[] = [];
    for (const group of section.groups) {
      for (const r of group) {
        y += STEP;
        const end = x(r.messagesPerSecond);
        const ratio = r.ratio === null ? '' : ` (×${r.ratio.toFixed(2)})`;
        lines.push(
          `<text x="${LABEL_END}" y="${y}" font-size="11" text-anchor="end">${escape(r.name)}</text>`,
          `<rect x="${BAR_START}" y="${y - BAR + 2}" width="${(end - BAR_START).toFixed(1)}" height="${BAR}" fill="${COLORS[r.system]}"/>`,
          `<text x="${(end + 4).toFixed(1)}" y="${y}" font-size="11">${count(r.messagesPerSecond)}${escape(ratio)}</text>`,
        );
      }
      y += 8;
    }
    // Decade grid lines behind the bars, labelled at the top of the section.
    for (let d = lo; d <= hi; d++) {
      const gx = x(10 ** d).toFixed(1);
      out.push(
        `<line x1="${gx}" y1="${top + 2}" x2="${gx}" y2="${y}" stroke="#e5e7eb"/>`,
        `<text x="${gx}" y="${top}" font-size="10" fill="#6b7280" text-anchor="middle">${count(10 ** d)}</text>`,
      );
    }
    out.push(...lines);
  }
  y += 16;
  out.push(
    `<text x="16" y="${y}" font-size="11" fill="#6b7280">(×n) = Tidings ÷ the peer's median, or ÷ the raw driver's run just before it (the grey bar is the median of those runs). Fixed-rate runs are left out.</text>`,
  );
  y += 12;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...out,
    `</svg>`,
    '',
  ].join('\n');
}
