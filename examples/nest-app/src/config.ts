import { Injectable } from '@nestjs/common';

/** Settings from the environment; tests replace them with `overrideProvider(AppConfig)`. */
@Injectable()
export class AppConfig {
  readonly database = process.env.DATABASE ?? 'nest-app.db';
  readonly port = Number(process.env.PORT ?? 3000);
  /** How long a payment may take before its order is handed to another delivery. */
  readonly leaseMs = Number(process.env.LEASE_MS ?? 30_000);
  /** The card processor's latency (to watch a graceful shutdown wait for a payment). */
  readonly gatewayDelayMs = Number(process.env.GATEWAY_DELAY_MS ?? 0);
}
