import { MESSAGE_VIEWS, type MessageView } from '@tidings/core';
import type { BrowsePage, StoredMessage } from '@tidings/core/adapter';
import { DashboardRequestError } from './errors.js';
import type { Targets } from './target.js';

/** A page of the message browser: one subscription's messages in a view, or those of an id or key, in delivery order. */
export interface MessagesPage extends BrowsePage {
  topic: string;
  subscription: string;
}

/** One message as its page shows it. */
export interface MessageAnswer {
  topic: string;
  subscription: string;
  message: StoredMessage;
}

/** Reads the message browser's pages from storage through the subscription's ledger, never a whole topic. */
export class Messages {
  constructor(private readonly targets: Targets) {}

  /** `GET /api/messages?topic=&subscription=&view=&id=&key=&after=&limit=`. */
  async page(query: URLSearchParams): Promise<MessagesPage> {
    const { ledger, record, subscription } = await this.targets.resolve(query.get('topic') ?? undefined, query.get('subscription') ?? undefined);
    const view = query.get('view') ?? undefined;
    if (view !== undefined && !(MESSAGE_VIEWS as readonly string[]).includes(view)) {
      throw new DashboardRequestError(400, 'INVALID_REQUEST', `"view" must be one of ${MESSAGE_VIEWS.join(', ')}; got "${view}".`);
    }
    const limitText = query.get('limit');
    const limit = limitText === null ? 50 : Number(limitText);
    const page = await ledger.browse({
      ...(view !== undefined ? { view: view as MessageView } : {}),
      ...optional(query, 'id'),
      ...optional(query, 'key'),
      ...optional(query, 'after'),
      limit,
    });
    return { topic: record.name, subscription, ...page };
  }

  /** `GET /api/message?topic=&subscription=&id=`: the message in whatever state the subscription holds it. */
  async one(query: URLSearchParams): Promise<MessageAnswer> {
    const { ledger, record, subscription } = await this.targets.resolve(query.get('topic') ?? undefined, query.get('subscription') ?? undefined);
    const id = query.get('id');
    if (!id) throw new DashboardRequestError(400, 'INVALID_REQUEST', '"id" must name a message, e.g. ?topic=orders&id=order-42.');
    const message = await ledger.message(id);
    if (!message)
      throw new DashboardRequestError(
        404,
        'UNKNOWN_MESSAGE',
        `Subscription ${record.name}/${subscription} holds no message "${id}" (any more): it may have been consumed, discarded or purged.`,
      );
    return { topic: record.name, subscription, message };
  }
}

/** A query parameter as a browse option when given; an empty one is left for browse to refuse, as it does. */
function optional<K extends 'id' | 'key' | 'after'>(query: URLSearchParams, name: K): Partial<Record<K, string>> {
  const value = query.get(name);
  return value === null ? {} : ({ [name]: value } as Record<K, string>);
}
