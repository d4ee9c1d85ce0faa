import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from './config';

/** A charge request; `key` makes the processor charge once however often it is asked (as Stripe's Idempotency-Key). */
export interface ChargeRequest {
  key: string;
  amount: number;
}

/** The card processor. A stand-in: it approves up to 100,000 and declines above, after the configured latency. */
@Injectable()
export class PaymentGateway {
  static readonly LIMIT = 100_000;
  private readonly logger = new Logger(PaymentGateway.name);

  constructor(private readonly config: AppConfig) {}

  async charge({ key, amount }: ChargeRequest): Promise<{ id: string }> {
    this.logger.log(`charging ${amount} for ${key}`);
    await new Promise((resolve) => setTimeout(resolve, this.config.gatewayDelayMs));
    if (amount > PaymentGateway.LIMIT) throw new Error(`card declined: ${amount} is over the limit of ${PaymentGateway.LIMIT}`);
    return { id: `ch_${key}` };
  }
}
