import { EntityManager } from '@mikro-orm/sqlite';
import { Controller, Get } from '@nestjs/common';
import type { ConsumeContext, Message } from '@tidings/core';
import { Consumer, type MessageConsumer } from '@tidings/nest';
import { Confirmation } from './entities';
import type { OrderPlaced } from './orders';

/**
 * Confirms each order once, reading the `confirmations` subscription of `orders`: it gets every order, at its own
 * pace, whether its payment succeeds, is retried or is dead-lettered.
 */
@Consumer('orders', { subscription: 'confirmations', concurrency: 10 })
export class ConfirmationsConsumer implements MessageConsumer<OrderPlaced, EntityManager> {
  handle(message: Message<OrderPlaced>, ctx: ConsumeContext<EntityManager>) {
    const { order, amount } = message.payload;
    // A real app would queue the email here, in the same transaction (an outbox), so it is sent once too.
    ctx.em.persist(ctx.em.create(Confirmation, { order, text: `Thank you for order ${order} (${amount}).` }));
  }
}

@Controller('confirmations')
export class ConfirmationsController {
  constructor(private readonly em: EntityManager) {}

  @Get()
  list() {
    return this.em.find(Confirmation, {}, { orderBy: { id: 'asc' } });
  }
}
