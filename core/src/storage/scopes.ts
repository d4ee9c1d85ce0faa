/** The subscription of a topic declared without `subscriptions`, the one `topic.consume()` reads. */
export const DEFAULT_SUBSCRIPTION = 'default';

/**
 * Where a subscription's consumed ids are kept: the topic's name for its default subscription (so records made before
 * subscriptions existed still count), `topic/subscription` for the others (`/` is in no topic name).
 */
export function idempotencyScope(topic: string, subscription: string): string {
  return subscription === DEFAULT_SUBSCRIPTION ? topic : `${topic}/${subscription}`;
}
