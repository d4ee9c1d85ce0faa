import type { ConsumeContext, Lifecycle, Message } from '@tidings/core';

/** What the `handle` hook of a Tidings plugin is given around each handler run. */
export interface HandleContext {
  readonly topic: string;
  readonly lifecycle: Lifecycle;
  readonly message: Message<unknown>;
  readonly context: ConsumeContext<unknown>;
}
