/** The Nest module: `forRoot`/`forRootAsync` for the instance, `forFeature` for topics. */
export { TidingsModule } from './tidings.module.js';
/** Decorators: `@Consumer`, `@OnMessage`, `@OnTidingsEvent`, `@InjectTopic`, `@InjectTidings`, and their metadata. */
export {
  Consumer,
  OnMessage,
  OnTidingsEvent,
  InjectTopic,
  InjectTidings,
  CONSUMER_METADATA,
  ON_MESSAGE_METADATA,
  ON_TIDINGS_EVENT_METADATA,
  type ConsumerOptions,
  type ConsumerMetadata,
  type OnTidingsEventMetadata,
  type MessageConsumer,
  type BatchConsumer,
} from './decorators.js';
/** Injection tokens: the instance, the module options, and each declared topic. */
export { TIDINGS, TIDINGS_MODULE_OPTIONS, getTopicToken } from './tokens.js';
/** Options of `forRoot`, `forRootAsync` and `forFeature`. */
export type { TidingsModuleOptions, TidingsModuleAsyncOptions, TopicDeclaration } from './options.js';
/** The start-up error of a miswired application, with its stable codes. */
export { NestSetupError, type NestSetupErrorCode } from './errors.js';
/** The topic `forFeature` declared under a name on an instance (what the microservices transport looks up). */
export { declaredTopic } from './registry.js';
/** Tidings' logger over a Nest `LoggerService`, one line per entry (the default of `forRoot`). */
export { nestLogger } from './logger.js';
