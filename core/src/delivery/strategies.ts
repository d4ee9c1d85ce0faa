import { noTransaction, runAll, type Delivery, type DeliveryContext } from './context.js';
import { TransactionalInbox } from './inbox.js';
import type { DeliveryStrategy } from '../lifecycle/plan.js';
import { describeError, firstLine } from '../services.js';
import type { StoredMessage } from '../storage/contract.js';

/** At-most-once: the lease deleted the message already; a failing handler loses it, visibly. */
function removeOnLease<Tx>(c: DeliveryContext<Tx>): Delivery {
  const { s } = c;
  const { topic } = s;
  return {
    process: (batch) =>
      runAll(batch, c.concurrency, async (m) => {
        try {
          await c.handle(m, noTransaction);
        } catch (error) {
          topic.events.emit('handlerError', { id: m.id, topic: topic.name, subscription: s.name, deliveries: m.deliveries, error, at: topic.clock.now() });
          topic.logger.warn('handler failed; at-most-once never redelivers, the message is gone', {
            topic: topic.name,
            subscription: s.name,
            id: m.id,
            error: firstLine(describeError(error)),
          });
          return;
        }
        s.ledger.emit(m.id, topic.plan.steps.handled);
      }),
  };
}

/** At-least-once: the handlers run, then the batch's acks and nacks are settled in the background. */
function ackAfterHandler<Tx>(c: DeliveryContext<Tx>): Delivery {
  return {
    async process(batch) {
      const acked: StoredMessage[] = [];
      const failed: Array<[StoredMessage, unknown]> = [];
      await runAll(batch, c.concurrency, async (m) => {
        try {
          await c.handle(m, noTransaction);
          acked.push(m);
        } catch (error) {
          failed.push([m, error]);
        }
      });
      c.settler.enqueue(acked, c.s.topic.plan.steps.handled, failed);
    },
  };
}

const strategies: Record<DeliveryStrategy, <Tx>(c: DeliveryContext<Tx>) => Delivery> = {
  'remove-on-lease': removeOnLease,
  'ack-after-handler': ackAfterHandler,
  'transactional-inbox': (c) => new TransactionalInbox(c),
};

/** The delivery strategy the topic's plan names. */
export function deliveryFor<Tx>(c: DeliveryContext<Tx>): Delivery {
  return strategies[c.s.topic.plan.delivery](c);
}
