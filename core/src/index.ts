import 'reflect-metadata';

export * from './errors.js';
export * from './lifecycle.js';
export * from './machines/index.js';
export * from './table.js';
export * from './plan.js';
export { lifecycleDiagram } from './diagram.js';
export * from './events.js';
export * from './storage.js';
export { decorateStorage } from './decorate.js';
export * from './idempotency.js';
export * from './runtime.js';
export * from './tokens.js';
export * from './options.js';
export { Topic, type SendAck, type SendOptions, type SendManyOptions } from './topic.js';
export { Consumer, DEFAULT_GRACE_MS, type Message, type ConsumeContext, type ConsumeOptions, type Handler, type StopOptions } from './consumer.js';
export { Tidings, type TidingsOptions, type TxOf } from './tidings.js';
