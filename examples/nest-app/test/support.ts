import type { LoggerService } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import { MikroORM } from '@mikro-orm/sqlite';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { Tidings } from '@tidings/core';
import { withFaults, type FaultOptions } from '@tidings/faults';
import { TIDINGS_MODULE_OPTIONS } from '@tidings/nest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { AppModule } from '../src/app.module';
import { AppConfig } from '../src/config';
import { PaymentGateway } from '../src/payment-gateway';

/** A Nest logger that keeps what is logged, so a test can assert what went wrong and that nothing else did. */
export class RecordingLogger implements LoggerService {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  log(): void {}
  debug(): void {}
  verbose(): void {}
  error(message: unknown): void {
    this.errors.push(String(message));
  }
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
}

/** Polls `check` until it holds. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tidings-nest-app-'));
let n = 0;

/** A fresh database file for one run of the app. */
export const freshDatabase = () => join(dir, `app-${++n}.db`);

/** What a test may change about the app: its settings, and faults injected into Tidings' storage. */
export interface StartOptions {
  config?: Partial<AppConfig>;
  faults?: Omit<FaultOptions, 'seed'>;
}

/** The whole AppModule in Nest's testing module, on a fresh SQLite file, with every charge to the card processor recorded. */
export async function startApp(options: StartOptions = {}) {
  const config: AppConfig = { database: freshDatabase(), port: 0, leaseMs: 30_000, gatewayDelayMs: 0, ...options.config };
  const logger = new RecordingLogger();
  let builder = Test.createTestingModule({ imports: [AppModule] })
    .overrideProvider(AppConfig)
    .useValue(config);
  if (options.faults) {
    const faults = options.faults;
    builder = builder.overrideProvider(TIDINGS_MODULE_OPTIONS).useFactory({
      inject: [MikroORM],
      factory: (orm: MikroORM) => ({ storage: withFaults(sqliteStorage({ orm }), { seed: 1, ...faults }), topicDefaults: { leaseMs: config.leaseMs } }),
    });
  }
  const moduleRef = await builder.setLogger(logger).compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({ logger });
  const gateway = app.get(PaymentGateway);
  const charges: string[] = [];
  const charge = gateway.charge.bind(gateway);
  gateway.charge = (req) => {
    charges.push(req.key);
    return charge(req);
  };
  await app.init();
  const http = () => request(app.getHttpServer());
  const tidings = app.get(Tidings);
  return {
    app,
    http,
    logger,
    tidings,
    gateway,
    /** Keys the card processor was asked to charge, in call order (one per handler run). */
    charges,
    /** Rows of the payment table, from the API. */
    payments: async () => (await http().get('/payments').expect(200)).body as Array<{ order: string; amount: number; charge: string }>,
    /** Rows of the confirmation table, from the API. */
    confirmations: async () => (await http().get('/confirmations').expect(200)).body as Array<{ id: number; order: string; text: string }>,
    /** Whether the orders topic holds no message in any state, in either subscription. */
    drained: async () => Object.keys((await tidings.counts('orders')).orders ?? {}).length === 0,
  };
}
