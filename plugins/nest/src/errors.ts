import { TidingsError } from '@tidings/core';

/** Stable codes of `NestSetupError`. */
export type NestSetupErrorCode =
  /** `TidingsModule.forRoot` was given no storage adapter. */
  | 'STORAGE_MISSING'
  /** A consumer, event pattern or client names a topic no `TidingsModule.forFeature` declared. */
  | 'TOPIC_NOT_DECLARED'
  /** A consumer or event pattern reads a subscription its topic's declaration does not list. */
  | 'SUBSCRIPTION_NOT_DECLARED'
  /** A `@Consumer` class has no `handle(message, ctx)` method. */
  | 'HANDLE_MISSING'
  /** A Tidings decorator sits on a class Nest does not know as a provider (a controller, for instance). */
  | 'NOT_A_PROVIDER'
  /** A Tidings decorator sits on a request-scoped provider, which has no single instance to call. */
  | 'SCOPED_PROVIDER'
  /** A decorator or transport was given something it cannot use (a non-string pattern, an unknown event). */
  | 'INVALID_DECLARATION';

/** A Tidings Nest application is wired in a way that cannot work; thrown at start-up, naming the class or method to fix. */
export class NestSetupError extends TidingsError {
  declare readonly code: NestSetupErrorCode;

  constructor(code: NestSetupErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
