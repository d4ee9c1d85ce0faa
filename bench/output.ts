// What a run prints: the progress bar on stderr, the table or the JSON document on stdout, and the machine it ran on.
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { readFileSync, realpathSync } from 'node:fs';
import type { Machine, Results, Row, TargetResult } from './rows.js';

/** The 1-minute load average when the run began (this module loads first). */
const loadAtStart = loadavg()[0]!;

/** The machine a run is on: cores, CPU model (from /proc/cpuinfo where there is one), Node, OS, memory, disk and load. */
export function machine(): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel;
  } catch {
    // Not Linux: os.cpus() has it.
  }
  return {
    cpus: cpus().length,
    cpuModel,
    node: process.version,
    platform: `${osType()} ${release()}`,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    disk: disk(),
    load: [round2(loadAtStart), round2(loadavg()[0]!)],
  };
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/** The device, file system and rotational flag of the temp folder's disk, where the bench's files are (Linux only). */
function disk(): string {
  try {
    const dir = realpathSync(tmpdir());
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .filter((m) => m.length > 2 && (dir === m[1] || dir.startsWith(m[1] === '/' ? '/' : `${m[1]}/`)))
      .sort((a, b) => b[1]!.length - a[1]!.length);
    const [device, , fs] = mounts[0]!;
    const name = device!.replace('/dev/', '').replace(/p?\d+$/, '');
    let kind = '';
    try {
      kind = readFileSync(`/sys/block/${name}/queue/rotational`, 'utf8').trim() === '0' ? ', non-rotational' : ', rotational';
    } catch {
      // A device without a queue (overlay, tmpfs): the file system says enough.
    }
    return `${device} (${fs}${kind})`;
  } catch {
    return 'unknown';
  }
}

/** A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise. */
export class Progress {
  private done = 0;
  private readonly started = Date.now();

  constructor(private readonly total: number) {}

  /** Marks the start of the next step. */
  step(label: string): void {
    this.draw(label);
    this.done++;
  }

  /** Marks the end of the last step. */
  finish(): void {
    this.draw(`done in ${Math.round((Date.now() - this.started) / 1000)} s`);
    if (process.stderr.isTTY) process.stderr.write('\n');
  }

  private draw(label: string): void {
    const bar = `[${'#'.repeat(Math.round((this.done / this.total) * 20)).padEnd(20)}] ${this.done}/${this.total} ${label}`;
    if (process.stderr.isTTY) process.stderr.write(`\r${bar.slice(0, (process.stderr.columns || 120) - 1).padEnd((process.stderr.columns || 120) - 1)}`);
    else process.stderr.write(`${bar}\n`);
  }
}

/** 12,345 */
export const count = (n: number) => Math.round(n).toLocaleString('en');

/** What Tidings logged during a run: `"warn: …" ×n, …`. */
export const loggedText = (logged: Record<string, number>) =>
  Object.entries(logged)
    .map(([m, n]) => `"${m}" ×${count(n)}`)
    .join(', ');

/** What a scale-out run's leases came to, in words. */
export const leasesText = (l: NonNullable<Row['leases']>) =>
  `${count(l.leases)} leases by ${l.processes} process${l.processes === 1 ? '' : 'es'}: ${count(l.empty)} empty, ${count(l.short)} short, ${count(l.busyRetries)} busy retries`;

/** One row's figures after its name: messages/s, ratio, latency, and the backlog's RSS and lease times. */
export function figures(r: Row): string {
  const parts = [count(r.messagesPerSecond).padStart(10), (r.ratio === null ? '' : r.ratio.toFixed(3)).padStart(7)];
  if (r.latencyMs) parts.push(`p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, p99.9 ${r.latencyMs.p999} ms`);
  const b = r.backlog;
  if (b) {
    parts.push(
      `lease of 100: ${b.leaseMs[0]} ms at ${count(b.sizes[0])}, ${b.leaseMs[1]} ms at ${count(b.sizes[1])} (×${b.leaseRatio}); ` +
        `consumer peak RSS ${b.consumerRssMb[0]} MB and ${b.consumerRssMb[1]} MB, producer ${b.producerRssMb} MB`,
    );
  } else if (r.rssMb !== undefined) parts.push(`peak RSS ${r.rssMb} MB`);
  if (r.leases) parts.push(leasesText(r.leases));
  if (r.duplicates) parts.push(`${count(r.duplicates)} redelivered`);
  if (r.rounds && r.rounds.length > 1) parts.push(`median of ${r.rounds.map(count).join(', ')}`);
  if (r.logged) parts.push(`logged ${loggedText(r.logged)}`);
  return parts.join('  ');
}

/**
 * The results as a table (the default output): each row indented under the row it is compared with, its ratio
 * beside it; rows compared with something that is not a row (a schedule) under a heading naming it.
 */
export function printTable(results: Results, heading: string): void {
  const rows = results.rows;
  const byName = new Map(rows.map((r) => [r.name, r]));
  const depthOf = (r: Row): number => (r.baseline !== null && byName.has(r.baseline) ? depthOf(byName.get(r.baseline)!) + 1 : 0);
  const width = Math.max(40, ...rows.map((r) => r.name.length + 2 * depthOf(r)));
  const load = results.machine.load;
  const out = [
    load ? `${heading}\nload average (1 minute): ${load[0]} at the start, ${load[1]} at the end` : heading,
    '',
    `${''.padEnd(width)}  ${'messages/s'.padStart(10)}  ${'ratio'.padStart(7)}`,
  ];
  const print = (r: Row, depth: number) => {
    out.push(`${'  '.repeat(depth)}${r.name}`.padEnd(width) + `  ${figures(r)}`);
    for (const c of rows) if (c.baseline === r.name) print(c, depth + 1);
  };
  const headed = new Set<string>();
  for (const r of rows) {
    if (r.baseline === null) print(r, 0);
    else if (!byName.has(r.baseline)) {
      if (!headed.has(r.baseline)) out.push(`(compared with ${r.baseline})`);
      headed.add(r.baseline);
      print(r, 1);
    }
  }
  out.push(
    '',
    'ratio = messages/s ÷ those of the row it is indented under: of its own run of a raw baseline just before it (a baseline row',
    "shows the median of its runs), of a peer's median, of another Tidings row, or of the schedule a fixed-rate run follows",
  );
  if (results.targets?.length) out.push('', 'targets:', ...targetLines(results.targets));
  if (results.costsMicroseconds) {
    out.push('', 'per-message cost of each step (µs):');
    for (const [k, v] of Object.entries(results.costsMicroseconds)) out.push(`  ${k.padEnd(40)} ${v.toFixed(3)}`);
  }
  for (const f of results.failures) out.push('', `FAILED  ${f.name}: ${f.error}`);
  console.log(out.join('\n'));
}

/** Each target as `met` / `not met` / `not measured` with its figure. */
export function targetLines(targets: readonly TargetResult[]): string[] {
  const verdict = (t: TargetResult) => (t.met === undefined ? 'not measured' : t.met ? 'met' : 'NOT MET');
  return targets.map((t) => `  ${verdict(t).padEnd(12)} ${t.target}: ${t.figure}`);
}
