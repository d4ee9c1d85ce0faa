import { Entity, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';

/** An order as POST /orders took it; its id is the client's, so a retried request is recognised. */
@Entity()
export class Order {
  [OptionalProps]?: 'createdAt';
  @PrimaryKey() id!: string;
  @Property() amount!: number;
  @Property() createdAt = new Date();
}

/** A charged order, written by the payments consumer in the transaction that consumes the order's message. */
@Entity()
export class Payment {
  @PrimaryKey() id!: number;
  @Property({ index: true }) order!: string;
  @Property() amount!: number;
  @Property() charge!: string;
}

/** An order's confirmation to the customer, written by the confirmations consumer whatever became of the payment. */
@Entity()
export class Confirmation {
  @PrimaryKey() id!: number;
  @Property({ index: true }) order!: string;
  @Property() text!: string;
}
