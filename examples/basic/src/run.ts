import { Tidings, type TopicOptions } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';

/** What one semantic delivered in the example. */
export interface SemanticReport {
  label: string;
  sent: number;
  delivered: number;
  distinct: number;
  /** Resends the broker answered as duplicates instead of storing. */
  duplicates: number;
  /** States each message went through, for the first message. */
  path: string[];
}

const SEMANTICS: Array<[string, TopicOptions]> = [
  ['at-most-once', { semantic: 'at-most-once' }],
  ['at-least-once', { semantic: 'at-least-once' }],
  ['exactly-once (broker)', { semantic: 'exactly-once', scope: 'broker' }],
  ['exactly-once (end-to-end)', { semantic: 'exactly-once', scope: 'end-to-end' }],
];

/** Sends `count` messages per semantic in memory, consumes them, and reports what each delivered. */
export async function runBasic(count = 5): Promise<SemanticReport[]> {
  const tidings = await Tidings.create({ storage: memoryStorage() });
  const paths = new Map<string, string[]>();
  tidings.events.on('transition', (e) => {
    const key = `${e.topic}/${e.id}`;
    paths.set(key, [...(paths.get(key) ?? [e.from]), e.to]);
  });
  const duplicates = new Map<string, number>();
  tidings.events.on('duplicate', (e) => duplicates.set(e.topic, (duplicates.get(e.topic) ?? 0) + 1));
  const reports: SemanticReport[] = [];
  for (const [label, options] of SEMANTICS) {
    const topic = tidings.topic<{ n: number }>(`basic.${options.semantic}.${options.scope ?? 'none'}`, options);
    const delivered: string[] = [];
    const consumer = topic.consume((m) => void delivered.push(m.id), { batchSize: 10 });
    const acks = await topic.sendMany(
      Array.from({ length: count }, (_, n) => ({ n })),
      { id: options.semantic === 'exactly-once' ? (p) => `order-${p.n}` : undefined },
    );
    // End-to-end exactly-once: a resend of the same id is answered as a duplicate, not stored again.
    if (options.scope === 'end-to-end') await topic.send({ n: 0 }, { id: 'order-0' });
    while (delivered.length < count) await new Promise((r) => setTimeout(r, 5));
    await consumer.stop();
    reports.push({
      label,
      sent: acks.length,
      delivered: delivered.length,
      distinct: new Set(delivered).size,
      duplicates: duplicates.get(topic.name) ?? 0,
      path: paths.get(`${topic.name}/${acks[0]!.id}`) ?? [],
    });
  }
  await tidings.close();
  return reports;
}
