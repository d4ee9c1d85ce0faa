import { EntityManager } from '@mikro-orm/sqlite';
import { BadRequestException, Body, Controller, Post, Res } from '@nestjs/common';
import type { Topic } from '@tidings/core';
import { InjectTopic } from '@tidings/nest';
import { Order } from './entities';

/** The message the orders topic carries. */
export interface OrderPlaced {
  order: string;
  amount: number;
}

@Controller('orders')
export class OrdersController {
  constructor(
    private readonly em: EntityManager,
    @InjectTopic('orders') private readonly orders: Topic<OrderPlaced, EntityManager>,
  ) {}

  /** Stores the order and sends it in one transaction (outbox); the same order again is answered as a duplicate. */
  @Post()
  async place(@Body() body: { id?: unknown; amount?: unknown }, @Res({ passthrough: true }) res: { status(code: number): void }) {
    const { id, amount } = body;
    if (typeof id !== 'string' || id === '' || !Number.isInteger(amount) || (amount as number) <= 0) {
      throw new BadRequestException('an order needs an id (a non-empty string of your choice) and an amount (a positive integer)');
    }
    return this.em.transactional(async (em) => {
      const { duplicate } = await this.orders.send({ order: id, amount: amount as number }, { id, em });
      if (!duplicate) em.persist(em.create(Order, { id, amount: amount as number }));
      res.status(duplicate ? 200 : 201);
      return { id, duplicate };
    });
  }
}
