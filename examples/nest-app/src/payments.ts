import { EntityManager } from '@mikro-orm/sqlite';
import { Controller, Get, Logger } from '@nestjs/common';
import { Tidings, type ConsumeContext, type DeadLetterEvent, type Message } from '@tidings/core';
import { Consumer, OnTidingsEvent, type MessageConsumer } from '@tidings/nest';
import { Payment } from './entities';
import type { OrderPlaced } from './orders';
import { PaymentGateway } from './payment-gateway';

/** Charges each order once: its payment row commits in the transaction that consumes the message's `payments` copy. */
@Consumer('orders', { subscription: 'payments', concurrency: 10 })
export class PaymentsConsumer implements MessageConsumer<OrderPlaced, EntityManager> {
  private readonly logger = new Logger(PaymentsConsumer.name);

  constructor(private readonly gateway: PaymentGateway) {}

  async handle(message: Message<OrderPlaced>, ctx: ConsumeContext<EntityManager>) {
    const { order, amount } = message.payload;
    const charge = await this.gateway.charge({ key: message.id, amount });
    ctx.em.persist(ctx.em.create(Payment, { order, amount, charge: charge.id }));
  }

  @OnTidingsEvent('deadLetter')
  deadLetter(event: DeadLetterEvent) {
    if (event.topic !== 'orders' || event.subscription !== 'payments') return;
    this.logger.error(`order ${event.id} was not paid after ${event.deliveries} attempts; see GET /payments/failed`);
  }
}

@Controller('payments')
export class PaymentsController {
  constructor(
    private readonly em: EntityManager,
    private readonly tidings: Tidings,
  ) {}

  @Get()
  list() {
    return this.em.find(Payment, {}, { orderBy: { id: 'asc' } });
  }

  /** Orders whose payment failed every attempt, with the last error. */
  @Get('failed')
  async failed() {
    const dead = await this.tidings.deadLetters('orders', 100, { subscription: 'payments' });
    return dead.map((m) => ({ order: m.id, attempts: m.deliveries, error: m.lastError?.split('\n', 1)[0] }));
  }
}
