/** Injection token of the application's `Tidings` instance (the `Tidings` class is an alias of it). */
export const TIDINGS = Symbol('tidings');

/** Injection token of the options given to `TidingsModule.forRoot` or made by `forRootAsync`. */
export const TIDINGS_MODULE_OPTIONS = Symbol('tidings.module-options');

/** The injection token of a topic declared with `TidingsModule.forFeature`; `@InjectTopic(name)` uses it. */
export function getTopicToken(name: string): string {
  return `TidingsTopic:${name}`;
}

/** Token of one forFeature declaration, so a conflict can be traced back to the modules that declared it. */
export function getTopicDeclarationToken(name: string): string {
  return `TidingsTopicDeclaration:${name}`;
}
