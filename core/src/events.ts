import { EventEmitter } from 'eventemitter3';
import type { Lifecycle, LifecycleEventType, MessageState, Semantic } from './lifecycle/names.js';

/** A message changed state. */
export interface TransitionEvent {
  id: string;
  topic: string;
  /** The subscription whose copy moved; absent on the producer's side (STORE, ACK), which is the topic's. */
  subscription?: string;
  semantic: Semantic;
  lifecycle: Lifecycle;
  from: MessageState;
  to: MessageState;
  event: LifecycleEventType;
  /** Epoch milliseconds from the instance's clock. */
  at: number;
}

/** A duplicate was dropped: by the broker's dedup window, or by a consumer's idempotency store. */
export interface DuplicateEvent {
  id: string;
  topic: string;
  /** The subscription it happened in (absent for the broker's dedup). */
  subscription?: string;
  by: 'broker' | 'consumer';
  at: number;
}

/** A lease ran out before the consumer settled the message. */
export interface LeaseExpiredEvent {
  id: string;
  topic: string;
  /** The subscription it happened in. */
  subscription: string;
  deliveries: number;
  at: number;
}

/** A message used up its deliveries and went to the dead state (and the dead-letter topic, if set). */
export interface DeadLetterEvent {
  id: string;
  topic: string;
  /** The subscription it happened in. */
  subscription: string;
  deadLetter?: string;
  deliveries: number;
  at: number;
  error?: unknown;
}

/** A handler threw; the message is nacked and retried after `delayMs` (or dead-lettered). */
export interface HandlerErrorEvent {
  id: string;
  topic: string;
  /** The subscription it happened in. */
  subscription: string;
  deliveries: number;
  error: unknown;
  at: number;
}

/** Something failed outside any caller's promise (a fire-and-forget send, a sweep). */
export interface BackgroundErrorEvent {
  topic?: string;
  subscription?: string;
  error: unknown;
  at: number;
}

/** What an operator did to a subscription (`pause`, `resume`, `empty`, `discard`, `retryNow`, `redrive`). */
export type OperatorAction = 'pause' | 'resume' | 'empty' | 'discard' | 'retryNow' | 'redrive';

/** An operator's act on a subscription, from this process (an application's call, its dashboard, the CLI). */
export interface OperatorEvent {
  action: OperatorAction;
  topic: string;
  subscription: string;
  /** The messages it touched (none for pause and resume). */
  count: number;
  /** The ids it was given; absent when it acted on all. */
  ids?: string[];
  at: number;
}

/** Every event on `tidings.events`, one member per event. */
export interface TidingsEvents {
  /** A message made a lifecycle transition. */
  transition: (e: TransitionEvent) => void;
  /** A duplicate send or delivery was dropped. */
  duplicate: (e: DuplicateEvent) => void;
  /** A lease expired and the message goes back for redelivery. */
  leaseExpired: (e: LeaseExpiredEvent) => void;
  /** A message was dead-lettered. */
  deadLetter: (e: DeadLetterEvent) => void;
  /** A handler threw. */
  handlerError: (e: HandlerErrorEvent) => void;
  /** A failure no caller awaits. */
  error: (e: BackgroundErrorEvent) => void;
  /** An operator paused, resumed, emptied, discarded, retried now or redrove (the moved messages' REDRIVE transitions come too). */
  operator: (e: OperatorEvent) => void;
}

/** The typed event bus of one Tidings instance. */
export class TidingsEventBus extends EventEmitter<TidingsEvents> {}
