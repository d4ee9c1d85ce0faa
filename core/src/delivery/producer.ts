import { AckTimeoutError, InvalidMessageError, PayloadTooLargeError, TidingsError } from '../errors.js';
import { backoffDelay } from '../options.js';
import { serializeHeaders } from '../headers.js';
import { serializePayload } from '../payload.js';
import type { NewMessage } from '../storage/contract.js';
import type { TopicRuntime } from './runtime.js';
import type { SendAck, SendManyOptions, SendOptions } from './send.js';

const ID_MAX = 200;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TidingsError('ACK_TIMEOUT', `no ack within ${ms} ms`, { retryable: true })), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** The producer side of a topic: `send` and `sendMany` with the topic's ack and retry rules; its stores go through the topic's ledger. */
export class Producer<T = unknown, Tx = unknown> {
  constructor(private readonly runtime: TopicRuntime) {}

  /** Sends a batch in one storage round-trip; acks come back in the batch's order. */
  async sendMany(payloads: T[], options: SendManyOptions<T, Tx> = {}): Promise<SendAck[]> {
    const rt = this.runtime;
    rt.assertOpen();
    if (!Array.isArray(payloads)) throw new InvalidMessageError(`sendMany takes an array of payloads, got ${typeof payloads}.`);
    for (const option of ['id', 'key'] as const) {
      if (options[option] !== undefined && typeof options[option] !== 'function') {
        throw new InvalidMessageError(
          `sendMany's ${option} option must be a function (payload, index) => ${option}, got ${typeof options[option]}. For one message with a fixed ${option} use send(payload, { ${option} }).`,
        );
      }
    }
    if (payloads.length === 0) return [];
    await this.declared(options.em);
    const availableAt = this.availableAt(options);
    // Every item is checked before anything is stored: one bad item refuses the whole batch, so the error names it.
    const index = (i: number) => (payloads.length > 1 ? i : undefined);
    const headers = serializeHeaders(options.headers, () => ` for topic "${rt.name}"`);
    const messages = payloads.map((p, i) => this.prepare(p, options.id?.(p, i), options.key?.(p, i), availableAt, headers, index(i)));
    const send = rt.plugins.send;
    if (!send) return this.dispatch(messages, options);
    const outgoing = messages.map((m, i) => ({ id: m.id, payload: payloads[i], headers: { ...options.headers } }));
    return send({ topic: rt.name, lifecycle: rt.plan.lifecycle, messages: outgoing }, () => {
      // Plugins may have added headers: checked again, as a caller's would be.
      outgoing.forEach((o, i) => (messages[i]!.headers = serializeHeaders(o.headers, () => ` of message ${o.id} (set by a plugin)`)));
      return this.dispatch(messages, options);
    });
  }

  /**
   * Waits until the topic and its subscriptions are recorded, so that no message is stored before a subscription
   * declared with its topic. Inside the caller's transaction it writes the records there instead: waiting could mean
   * waiting for the very connection that transaction holds.
   */
  private async declared(em: Tx | undefined): Promise<void> {
    const { declaration } = this.runtime;
    if (em === undefined || declaration.settled) await declaration.declared;
    else await declaration.writeIn(em);
  }

  /** Stores the batch the way the topic's producer strategy says: in the caller's transaction, unacked, awaited, or retried. */
  private dispatch(messages: NewMessage[], options: SendManyOptions<T, Tx>): Promise<SendAck[]> {
    const rt = this.runtime;
    if (options.em !== undefined) return this.store(messages, options.em);
    switch (rt.plan.producer) {
      case 'fire-and-forget': {
        // Fire and forget: the caller does not wait for storage; a failure surfaces on the `error` event.
        void rt.track(this.store(messages)).catch((error) => rt.events.emit('error', { topic: rt.name, error, at: rt.clock.now() }));
        return Promise.resolve(messages.map((m) => ({ id: m.id, duplicate: false })));
      }
      case 'await-store':
        return withTimeout(this.store(messages), rt.options.ackTimeoutMs);
      case 'retry-until-acked':
        return this.storeWithRetry(messages, options.id !== undefined || rt.plan.dedup);
    }
  }

  private availableAt(o: SendOptions<Tx> | SendManyOptions<T, Tx>): number {
    const now = this.runtime.clock.now();
    if (o.deliverAt !== undefined) {
      const at = o.deliverAt instanceof Date ? o.deliverAt.getTime() : o.deliverAt;
      if (!Number.isFinite(at)) throw new InvalidMessageError(`deliverAt must be a valid Date or epoch ms, got ${String(o.deliverAt)}.`);
      return Math.max(now, at);
    }
    if (o.delayMs !== undefined) {
      if (!Number.isFinite(o.delayMs) || o.delayMs < 0) {
        throw new InvalidMessageError(`delayMs must be a finite number >= 0, got ${String(o.delayMs)}.`);
      }
      return now + o.delayMs;
    }
    return now;
  }

  private prepare(payload: T, id: string | undefined, key: string | undefined, availableAt: number, headers: string | undefined, index?: number): NewMessage {
    const rt = this.runtime;
    // Built only for an error message: a valid send pays nothing for it.
    const which = () => (index === undefined ? '' : ` at index ${index} of the batch`);
    if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > ID_MAX)) {
      throw new InvalidMessageError(`A message id${which()} must be a string of 1-${ID_MAX} characters, got ${JSON.stringify(id) ?? String(id)}.`);
    }
    if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > ID_MAX)) {
      throw new InvalidMessageError(`An ordering key${which()} must be a string of 1-${ID_MAX} characters, got ${JSON.stringify(key) ?? String(key)}.`);
    }
    const body = serializePayload(payload, () => `${which()} for topic "${rt.name}"`);
    const bytes = Buffer.byteLength(body);
    if (bytes > rt.options.maxPayloadBytes) throw new PayloadTooLargeError(bytes, rt.options.maxPayloadBytes, rt.name, index);
    const message: NewMessage = { id: id ?? rt.ids.next(), body, availableAt };
    if (key !== undefined) message.key = key;
    if (headers !== undefined) message.headers = headers;
    return message;
  }

  private store(messages: NewMessage[], tx?: unknown): Promise<SendAck[]> {
    return this.runtime.ledger.store(messages, tx);
  }

  private async storeWithRetry(messages: NewMessage[], sameIds: boolean): Promise<SendAck[]> {
    const rt = this.runtime;
    const { attempts } = rt.options.retry;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      rt.assertOpen();
      // Without a producer-made id each attempt is a new message: a lost ack then means a duplicate, as at-least-once allows.
      const batch = sameIds || attempt === 1 ? messages : messages.map((m) => ({ ...m, id: rt.ids.next() }));
      try {
        return await withTimeout(this.store(batch), rt.options.ackTimeoutMs);
      } catch (error) {
        if (error instanceof TidingsError && !error.retryable) throw error;
        lastError = error;
        rt.logger.warn('send not acked, retrying', { topic: rt.name, attempt, error: String(error) });
        if (attempt < attempts) await sleep(backoffDelay(rt.options.retry, attempt));
      }
    }
    throw new AckTimeoutError(rt.name, messages.length === 1 ? messages[0]!.id : undefined, attempts, { cause: lastError });
  }
}
