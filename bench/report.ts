// The generated parts of docs/benchmarks.md: the machine, the tables of the latest run and the targets.
import { count, leasesText, loggedText } from './output.js';
import type { Machine, Results, Row, TargetResult } from './rows.js';

/** The machine as a Markdown list. */
function machineMarkdown(m: Machine, load = m.load): string {
  return [
    `- ${m.cpus} cores: ${m.cpuModel}`,
    `- ${m.memoryGb} GB of memory, ${m.platform}`,
    `- Node ${m.node}`,
    `- disk of the temp folder (files, embedded PostgreSQL, Redis AOF): ${m.disk}`,
    ...(load ? [`- load average (1 minute): ${load[0]} at the start, ${load[1]} at the end`] : []),
  ].join('\n');
}

/** The machine of a recording (the bench, then the peers): the load at the bench's start and at the peers' end. */
export function recordingMachineMarkdown(bench: Results, peers: Results): string {
  const [start, end] = [bench.machine.load, peers.machine.load];
  return machineMarkdown(bench.machine, start && end && [start[0], end[1]]);
}

const latency = (r: Row) => (r.latencyMs ? `${r.latencyMs.p50} / ${r.latencyMs.p99} / ${r.latencyMs.p999}` : '');

function notes(r: Row): string {
  const parts: string[] = [];
  if (r.rounds && r.rounds.length > 1) parts.push(`median of ${r.rounds.map(count).join(', ')}`);
  if (r.scheduledPerSecond) parts.push(`scheduled ${count(r.scheduledPerSecond)}/s`);
  const b = r.backlog;
  if (b) {
    parts.push(
      `lease of 100: ${b.leaseMs[0]} ms at ${count(b.sizes[0])}, ${b.leaseMs[1]} ms at ${count(b.sizes[1])} (×${b.leaseRatio})`,
      `consumer peak RSS ${b.consumerRssMb[0]} MB / ${b.consumerRssMb[1]} MB, producer ${b.producerRssMb} MB`,
    );
  }
  if (r.leases) parts.push(leasesText(r.leases));
  if (r.duplicates) parts.push(`${count(r.duplicates)} redelivered`);
  if (r.logged) parts.push(`Tidings logged ${loggedText(r.logged)}`);
  return parts.join('; ');
}

/** A run's rows as a Markdown table. */
export function rowsMarkdown(results: Results): string {
  const out = ['| scenario | messages/s | ratio | compared with | latency p50 / p99 / p99.9 ms | notes |', '|---|--:|--:|---|---|---|'];
  for (const r of results.rows)
    out.push(
      `| ${r.name} | ${count(r.messagesPerSecond)} | ${r.ratio === null ? '' : r.ratio.toFixed(3)} | ${r.baseline ?? ''} | ${latency(r)} | ${notes(r)} |`,
    );
  for (const f of results.failures) out.push(`| ${f.name} | FAILED | | | | ${f.error.replace(/\|/g, '\\|')} |`);
  return out.join('\n');
}

/** The targets as a Markdown list: verdict, target, figure. */
export function targetsMarkdown(targets: readonly TargetResult[]): string {
  const verdict = (t: TargetResult) => (t.met === undefined ? 'not measured' : t.met ? '**met**' : '**not met**');
  return targets.map((t) => `- ${verdict(t)}: ${t.target}. Measured: ${t.figure}.`).join('\n');
}

/** `doc` with the text between `<!-- name:begin -->` and `<!-- name:end -->` replaced by `body`. */
export function replaceSection(doc: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin (written by npm run bench:record) -->`;
  const end = `<!-- ${name}:end -->`;
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from < 0 || to < from) throw new Error(`docs/benchmarks.md has no ${begin} … ${end} section`);
  return `${doc.slice(0, from + begin.length)}\n${body}\n${doc.slice(to)}`;
}
