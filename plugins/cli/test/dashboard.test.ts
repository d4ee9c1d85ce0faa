import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const pkg = fileURLToPath(new URL('..', import.meta.url));
const bin = join(pkg, 'bin', 'tidings.js');
const dir = mkdtempSync(join(tmpdir(), 'tidings-cli-dashboard-'));
const file = join(dir, 'shop.db');
const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  // The bin runs dist/; rebuild the CLI when its sources are newer, so the test checks this code.
  const built = join(pkg, 'dist', 'cli.js');
  const newest = Math.max(...readdirSync(join(pkg, 'src')).map((f) => statSync(join(pkg, 'src', f)).mtimeMs));
  if (!existsSync(built) || statSync(built).mtimeMs < newest) execFileSync('npm', ['run', 'build', '-w', '@tidings/cli'], { cwd: root, stdio: 'ignore' });
  // Messages in several states, as an application leaves them: waiting, leased, dead.
  const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
  const orders = tidings.topic<{ n: number }>('orders', { semantic: 'at-least-once', maxDeliveries: 1 });
  const payments = tidings.topic<{ n: number }>('payments', { semantic: 'exactly-once', scope: 'broker', leaseMs: 600_000 });
  await orders.sendMany([{ n: 1 }], { id: () => 'order-1' });
  const failing = orders.consume(
    async () => {
      throw new Error('out of stock');
    },
    { pollMs: 5 },
  );
  await until('a dead letter', async () => (await tidings.counts('orders')).orders?.dead === 1);
  await failing.stop();
  await orders.sendMany([{ n: 2 }, { n: 3 }], { id: (p) => `order-${p.n}` });
  await payments.sendMany([{ n: 1 }, { n: 2 }], { id: (p) => `pay-${p.n}` });
  // A handler abandoned at stop leaves pay-1 leased after the process is gone, as a crashed worker would (its
  // transaction rolls back when it returns, on the abort).
  const stuck = payments.consume((_m, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => setTimeout(resolve, 10))), {
    pollMs: 5,
    batchSize: 1,
  });
  // Watched through events: SQLite's one connection serves nothing else while the handler's transaction is open.
  let leased = false;
  tidings.events.on('transition', (e) => void (e.topic === 'payments' && e.event === 'LEASE' && (leased = true)));
  await until('a lease', () => leased);
  await stuck.stop({ graceMs: 0 });
  await tidings.close({ graceMs: 0 });
});

/** Starts `tidings dashboard`, resolving with its URL once it printed it. */
async function start(...args: string[]): Promise<{ child: ChildProcess; url: string; stdout: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [bin, 'dashboard', '--db', file, '--port', '0', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => (stdout += c));
  child.stderr!.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await until('the dashboard URL', () => /at (http:\S+)/.test(stdout) || child.exitCode !== null, 20_000);
  const url = /at (http:\S+)/.exec(stdout)?.[1];
  if (!url) throw new Error(`tidings dashboard did not start: ${stderr}`);
  return { child, url, stdout: () => stdout, exited };
}

const run = (...args: string[]) =>
  promisify(execFile)(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 20_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

describe('tidings dashboard', () => {
  it('serves the page, the snapshot and /metrics of a SQLite file, then stops cleanly on SIGTERM', async () => {
    const { child, url, stdout, exited } = await start();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(stdout()).toContain(`Dashboard of SQLite file ${file} at ${url}`);
    const metrics = await (await fetch(new URL('metrics', url))).text();
    expect(metrics).toContain('tidings_messages{topic="orders",subscription="default",semantic="at-least-once",state="acked"} 2');
    expect(metrics).toContain('tidings_messages{topic="orders",subscription="default",semantic="at-least-once",state="dead"} 1');
    expect(metrics).toContain('tidings_messages{topic="payments",subscription="default",semantic="exactly-once/broker",state="stored"} 1');
    expect(metrics).toContain('tidings_messages{topic="payments",subscription="default",semantic="exactly-once/broker",state="leased"} 1');
    const page = await (await fetch(url)).text();
    expect(page).toContain(`<title>Tidings: ${file}</title>`);
    expect(page).toContain('Standalone on a database other processes use');
    const snapshot = (await (await fetch(new URL('api/snapshot', url))).json()) as {
      topics: Array<{
        name: string;
        deadLetters: Array<{ id: string; lastError: string }>;
        leases: Array<{ id: string; leaseToken: string; leaseUntil: number }>;
      }>;
    };
    const orders = snapshot.topics.find((t) => t.name === 'orders')!;
    expect(orders.deadLetters.map((d) => [d.id, d.lastError.split('\n')[0]])).toEqual([['order-1', 'Error: out of stock']]);
    const [lease] = snapshot.topics.find((t) => t.name === 'payments')!.leases;
    expect(lease).toMatchObject({ id: 'pay-1', leaseToken: expect.any(String) });
    expect(lease!.leaseUntil).toBeGreaterThan(Date.now());
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0).toBe(0);
  });

  it('stops on SIGINT too', async () => {
    const { child, exited } = await start();
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });

  it('needs --token beyond loopback, and then refuses requests without it', async () => {
    const refused = await run('dashboard', '--db', file, '--host', '0.0.0.0', '--port', '0');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^tidings: The dashboard will not listen on 0\.0\.0\.0 without a token.*\n$/);
    const { url, child, exited } = await start('--token', 'cli-token-0123');
    expect((await fetch(new URL('metrics', url))).status).toBe(401);
    expect((await fetch(new URL('metrics', url), { headers: { authorization: 'Bearer cli-token-0123' } })).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('answers the host names given with --allowed-host, and refuses others with how to allow them', async () => {
    const { url, child, exited } = await start('--allowed-host', 'dash.example.com', '--allowed-host', '.tidings.test');
    const port = Number(new URL(url).port);
    // node:http, since fetch cannot set Host.
    const get = (host: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/api/snapshot', headers: { host } }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
    for (const host of ['dash.example.com', `dash.example.com:${port}`, 'tidings.test', 'eu.tidings.test', `127.0.0.1:${port}`, `localhost:${port}`]) {
      expect([host, (await get(host)).status]).toEqual([host, 200]);
    }
    const refused = await get(`other.example:${port}`);
    expect(refused.status).toBe(421);
    expect(JSON.parse(refused.body).error).toMatchObject({
      code: 'HOST_NOT_ALLOWED',
      message: expect.stringContaining('tidings dashboard --allowed-host other.example.'),
    });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const bad = await run('dashboard', '--db', file, '--port', '0', '--allowed-host', 'https://dash.example.com');
    expect(bad).toMatchObject({ code: 1, stdout: '' });
    expect(bad.stderr).toMatch(/^tidings: allowedHosts \(tidings dashboard --allowed-host\) takes host names without scheme or port/);
  });

  it.each([
    [['--port', 'abc'], /^tidings: Port "abc" is not a port: pass an integer from 1 to 65535, or 0 for any free port\.\n$/],
    [['--port', '70000'], /^tidings: Port 70000 is not a port/],
    [['--db', join(dir, 'missing.db')], /^tidings: No Tidings database at /],
  ])('exits 1 with one line on stderr for %j', async (args, stderr) => {
    const r = await run('dashboard', '--db', file, ...args);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toMatch(stderr);
  });
});
