import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickSeed, type DeliveryCheck } from '@tidings/faults';
import { freshPostgresDatabase } from '../support/databases.js';
import { judgeCrashRun, prepareDatabase, runCrashScenario, type CrashScenario } from '@tidings/cli';

const seed = pickSeed();
const dir = mkdtempSync(join(tmpdir(), 'tidings-crash-'));
const report: Array<{ backend: string; kills: number } & DeliveryCheck> = [];
let totalKills = 0;

// Every run is under load: one busy process competes with the workers for the CPU, as other suites or services would.
// It ends by itself after 15 minutes should the runner die before afterAll.
let hog: ChildProcess | undefined;
beforeAll(() => {
  hog = spawn(process.execPath, ['-e', 'const end = Date.now() + 900_000; while (Date.now() < end);'], { stdio: 'ignore' });
});

afterAll(() => {
  hog?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  console.log(`crash tests, seed ${seed} (replay with TIDINGS_SEED=${seed}), ${totalKills} SIGKILLs`);
  console.table(
    report.map((r) => ({
      backend: r.backend,
      lifecycle: r.lifecycle,
      kills: r.kills,
      sent: r.sent,
      acked: r.acked,
      stored: r.stored,
      delivered: r.delivered,
      lost: r.lost,
      lostStored: r.lostStored,
      duplicated: r.duplicated,
      unexpected: r.unexpected,
      recovered: r.recovered,
      outOfOrder: r.ordered ? r.outOfOrder : '',
    })),
  );
});

const CONFIGS: CrashScenario['config'][] = ['at-most-once', 'at-least-once', 'exactly-once/broker', 'exactly-once/end-to-end'];
const BACKENDS: Array<[string, (name: string) => Promise<string>]> = [
  ['SQLite file', async (name) => join(dir, `${name}.db`)],
  ['PostgreSQL', (name) => freshPostgresDatabase(name)],
];

describe.each(BACKENDS)('real processes SIGKILLed at random moments, a fifth of producer acks lost, on %s', (backend, database) => {
  it.each(CONFIGS)('%s keeps its guarantee', { timeout: 240_000 }, async (config) => {
    const name = `crash_${config.replace(/\W/g, '_')}`;
    const db = await database(name);
    await prepareDatabase({ db });
    const scenario: CrashScenario = { db, config, messages: 100, seed: seed + CONFIGS.indexOf(config), kills: 3, lostAckRate: 0.2, crashRate: 0.005 };
    const outcome = await runCrashScenario(scenario, name);
    totalKills += outcome.kills;
    // What the broker stored is known from its own side (a trigger on its table), not inferred from what was consumed.
    const { checks, broken } = judgeCrashRun({ name: config, lifecycle: config }, outcome);
    const result = checks[0]!;
    report.push({ backend, kills: outcome.kills, ...result });
    // The semantic's rule; at-most-once never twice and lost only what a killed process held; the others lose nothing stored.
    expect(broken, `[seed ${scenario.seed}]`).toEqual([]);
    expect(outcome.kills).toBeGreaterThanOrEqual(scenario.kills);
    if (config === 'at-most-once') expect(outcome.crashed.length, 'a consumer was killed holding messages').toBeGreaterThan(0);
    else expect(result.acked).toBeGreaterThan(0);
  });
});

const ORDERED: CrashScenario['config'][] = ['at-least-once', 'exactly-once/end-to-end'];
const SUBSCRIPTIONS = ['billing', 'shipping'];

describe.each(BACKENDS)('an ordered topic with two subscriptions, each read by processes SIGKILLed at random moments, on %s', (backend, database) => {
  it.each(ORDERED)('%s keeps its guarantee and the order of every key, in every subscription', { timeout: 240_000 }, async (config) => {
    const name = `ordered_${config.replace(/\W/g, '_')}`;
    const db = await database(name);
    await prepareDatabase({ db });
    const scenario: CrashScenario = {
      db,
      config,
      messages: 100,
      seed: seed + 10 + ORDERED.indexOf(config),
      kills: 3,
      lostAckRate: 0.2,
      crashRate: 0.005,
      subscriptions: SUBSCRIPTIONS,
      ordered: true,
    };
    const outcome = await runCrashScenario(scenario, name);
    totalKills += outcome.kills;
    const { checks, subscriptions, broken } = judgeCrashRun({ name: `${config}, ordered`, lifecycle: config, ordered: true }, outcome);
    expect(subscriptions).toEqual(SUBSCRIPTIONS);
    checks.forEach((result, i) => {
      report.push({ backend: `${backend}, ${subscriptions[i]}`, kills: outcome.kills, ...result });
      expect(result.ordered, 'every effect carried its ordering key').toBe(true);
      expect(result.acked).toBeGreaterThan(0);
    });
    // Per subscription: the semantic's rule, every key in order, nothing stored lost.
    expect(broken, `[seed ${scenario.seed}]`).toEqual([]);
    expect(outcome.kills).toBeGreaterThanOrEqual(scenario.kills);
  });
});

describe.each(BACKENDS)('a batch handler on exactly-once end-to-end, its processes SIGKILLed at random moments, on %s', (backend, database) => {
  it('consumes every acked message once: 0 lost, 0 duplicated effects', { timeout: 240_000 }, async () => {
    const config = 'exactly-once/end-to-end';
    const name = 'batch_e2e';
    const db = await database(name);
    await prepareDatabase({ db });
    const scenario: CrashScenario = { db, config, messages: 100, seed: seed + 20, kills: 3, lostAckRate: 0.2, crashRate: 0.005, batch: true };
    const outcome = await runCrashScenario(scenario, name);
    totalKills += outcome.kills;
    const { checks, broken } = judgeCrashRun({ name: 'exactly-once-batch', lifecycle: config, batch: true }, outcome);
    const result = checks[0]!;
    report.push({ backend: `${backend}, batch handler`, kills: outcome.kills, ...result });
    expect(broken, `[seed ${scenario.seed}]`).toEqual([]);
    expect({ lost: result.lost, duplicated: result.duplicated }).toEqual({ lost: 0, duplicated: 0 });
    expect(outcome.kills).toBeGreaterThanOrEqual(scenario.kills);
    expect(result.acked).toBeGreaterThan(0);
  });
});

describe('the crash runs as a whole', () => {
  it('sent at least 20 SIGKILLs, and at-least-once (no idempotency store) shows the duplicates exactly-once removes', () => {
    expect(totalKills).toBeGreaterThanOrEqual(20);
    const alo = report.filter((r) => r.lifecycle === 'at-least-once');
    const e2e = report.filter((r) => r.lifecycle === 'exactly-once/end-to-end');
    expect(alo.reduce((n, r) => n + r.duplicated, 0)).toBeGreaterThan(0);
    expect(e2e.reduce((n, r) => n + r.duplicated + r.lost, 0)).toBe(0);
  });
});
