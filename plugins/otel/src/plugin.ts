import type { Attributes, Baggage, Context, Link, Span, TextMapGetter, TextMapSetter, TracerProvider } from '@opentelemetry/api';
import type { BatchHandleContext, HandleContext, SendAck, SendContext, TidingsPlugin } from '@tidings/core';
import { loadOtelApi, type OtelApi } from './api.js';

/** Options of `otelPlugin`. */
export interface OtelPluginOptions {
  /** Where the spans go; by default the global provider your SDK registered (`trace.getTracerProvider()`). */
  tracerProvider?: TracerProvider;
  /** The instrumentation scope the spans are reported under; `@tidings/otel` by default. */
  tracerName?: string;
}

/** The `messaging.system` of every span: what the OpenTelemetry messaging conventions call the broker. */
export const MESSAGING_SYSTEM = 'tidings';

/** A message's headers as the propagator writes them. */
const setter: TextMapSetter<Record<string, string>> = {
  set: (headers, key, value) => void (headers[key] = value),
};

/** A stored message's headers as the propagator reads them. */
const getter: TextMapGetter<Readonly<Record<string, string>>> = {
  keys: (headers) => Object.keys(headers),
  get: (headers, key) => headers[key],
};

/**
 * OpenTelemetry traces for Tidings. Each message sent gets a PRODUCER span (`<topic> publish`) whose context travels in
 * the message's headers (`traceparent`, `tracestate`, through the propagator the application registered, W3C trace
 * context with the SDK's defaults); each handler run gets a CONSUMER span (`<topic> process`) linked to it, active
 * while the handler runs, naming the subscription (`messaging.consumer.group.name`) and the ordering key; a batch
 * handler's run gets one, linked to each message's producer span. Throws `OtelApiMissingError` (`OTEL_API_MISSING`)
 * when `@opentelemetry/api` is not installed.
 */
export function otelPlugin(options: OtelPluginOptions = {}): TidingsPlugin {
  const api = loadOtelApi();
  const tracer = (options.tracerProvider ?? api.trace.getTracerProvider()).getTracer(options.tracerName ?? '@tidings/otel');
  let warned = false;

  return {
    name: 'otel',

    async send(ctx: SendContext, next: () => Promise<SendAck[]>): Promise<SendAck[]> {
      const parent = api.context.active();
      const fields = api.propagation.fields();
      if (fields.length === 0 && !warned) {
        warned = true;
        api.diag.warn(
          '@tidings/otel: no propagator is registered (propagation.setGlobalPropagator), so consumer spans cannot be linked to their producer spans.',
        );
      }
      const spans = ctx.messages.map((message) => {
        const span = tracer.startSpan(
          `${ctx.topic} publish`,
          {
            kind: api.SpanKind.PRODUCER,
            attributes: {
              'messaging.system': MESSAGING_SYSTEM,
              'messaging.destination.name': ctx.topic,
              'messaging.operation.type': 'publish',
              'messaging.operation.name': 'publish',
              'messaging.message.id': message.id,
              'tidings.lifecycle': ctx.lifecycle,
            },
          },
          parent,
        );
        if (api.isSpanContextValid(span.spanContext())) {
          // A tracestate the caller set belongs to another trace than the traceparent written now.
          delete message.headers.tracestate;
          api.propagation.inject(api.trace.setSpan(parent, span), message.headers, setter);
        }
        return span;
      });
      try {
        // One message: what storage does (a driver's own spans) is that message's publish. A batch has no one span.
        const only = spans.length === 1 && api.isSpanContextValid(spans[0]!.spanContext()) ? spans[0] : undefined;
        const acks = await (only ? api.context.with(api.trace.setSpan(parent, only), next) : next());
        acks.forEach((ack, i) => ack.duplicate && spans[i]?.setAttribute('tidings.duplicate', true));
        return acks;
      } catch (error) {
        for (const span of spans) fail(api, span, error);
        throw error;
      } finally {
        for (const span of spans) span.end();
      }
    },

    // Not async itself: processIn is, and a second async frame is a measurable share of the no-op path.
    handle(ctx: HandleContext, next: () => Promise<void>): Promise<void> {
      const { message } = ctx;
      const sent = api.propagation.extract(api.ROOT_CONTEXT, message.headers, getter);
      const producer = api.trace.getSpanContext(sent);
      const links: Link[] = producer && api.isSpanContextValid(producer) ? [{ context: producer }] : [];
      // Added to rather than spread: a spread measured several times the cost of the whole no-op path.
      const attributes = processAttributes(ctx);
      attributes['messaging.message.id'] = message.id;
      attributes['tidings.attempt'] = message.attempt;
      if (message.key !== undefined) attributes['tidings.ordering_key'] = message.key;
      // A new trace, linked rather than parented: see the README's "Links, not parents".
      const span = tracer.startSpan(`${ctx.topic} process`, { kind: api.SpanKind.CONSUMER, root: true, links, attributes });
      return processIn(api, span, api.propagation.getBaggage(sent), next);
    },

    handleBatch(ctx: BatchHandleContext, next: () => Promise<void>): Promise<void> {
      // The conventions' batch process span: one for the run, a link to each message's creation context.
      const links: Link[] = [];
      for (const message of ctx.messages) {
        const producer = api.trace.getSpanContext(api.propagation.extract(api.ROOT_CONTEXT, message.headers, getter));
        if (producer && api.isSpanContextValid(producer)) links.push({ context: producer, attributes: { 'messaging.message.id': message.id } });
      }
      const attributes = processAttributes(ctx);
      attributes['messaging.batch.message_count'] = ctx.messages.length;
      const span = tracer.startSpan(`${ctx.topic} process`, { kind: api.SpanKind.CONSUMER, root: true, links, attributes });
      // The messages' baggage is not merged: theirs may disagree, and the run is one context.
      return processIn(api, span, undefined, async () => {
        await next();
        // Marked failed, those messages are nacked while the rest are acked: the run itself did not fail.
        if (ctx.failed.size > 0) span.setAttribute('tidings.batch.failed_count', ctx.failed.size);
      });
    },
  };
}

/** What every consumer span says: the destination, the subscription, the operation and the lifecycle. */
function processAttributes(ctx: Pick<HandleContext, 'topic' | 'subscription' | 'lifecycle'>): Attributes {
  return {
    'messaging.system': MESSAGING_SYSTEM,
    'messaging.destination.name': ctx.topic,
    // A subscription is what the conventions call a consumer group: its consumers compete for the messages, and
    // every subscription gets each message.
    'messaging.consumer.group.name': ctx.subscription,
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'tidings.subscription': ctx.subscription,
    'tidings.lifecycle': ctx.lifecycle,
  };
}

/** Runs a handler with its consumer span active (and the producer's baggage, if any), then ends the span. */
async function processIn(api: OtelApi, span: Span, baggage: Baggage | undefined, next: () => Promise<void>): Promise<void> {
  const current = api.context.active();
  // A no-op tracer's span with nothing else to carry: the handler would see what it sees now, so skip context.with,
  // which costs microseconds under an AsyncLocalStorage context manager. A span active here (from where consume()
  // was called) must still be replaced, or the handler's spans would become its children.
  if (!span.isRecording() && !api.isSpanContextValid(span.spanContext()) && !baggage && !api.trace.getSpan(current)) return next();
  let active: Context = api.trace.setSpan(current, span);
  if (baggage) active = api.propagation.setBaggage(active, baggage);
  try {
    await api.context.with(active, next);
  } catch (error) {
    fail(api, span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** Marks a span failed by `error`: status ERROR with its message, an exception event, and `error.type`. */
function fail(api: OtelApi, span: Span, error: unknown): void {
  const code = (error as { code?: unknown } | null)?.code;
  const type = typeof code === 'string' ? code : error instanceof Error ? error.name : typeof error;
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  span.setAttribute('error.type', type);
}
