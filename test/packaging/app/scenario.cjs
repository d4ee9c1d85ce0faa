'use strict';
// What an application does with the built packages. main.cjs runs it loading them with require(), main.mjs with
// import(); the packaging tests run both in the workspace and in an app that installed the packed tarballs.

/** Every package the scenario loads; each must resolve to its dist/ (no @tidings/source condition here). */
const PACKAGES = [
  '@tidings/core',
  '@tidings/adapter-memory',
  '@tidings/idempotency',
  '@tidings/adapter-mikro-orm',
  '@tidings/adapter-sqlite',
  '@tidings/adapter-postgres',
  '@tidings/faults',
  '@tidings/cli',
  // Loads without @opentelemetry/api, its optional peer, which the application outside the workspace does not have.
  '@tidings/otel',
];

/** Core's other entry points: each must resolve to a dist/ file of its own and share the main entry's classes. */
const SUBPATHS = ['@tidings/core/adapter', '@tidings/core/diagrams'];

/** Opens the storage `kind` names: memory, a SQLite file, or a SQLite file through the application's own MikroORM. */
async function openStorage(modules, load, kind, file) {
  if (kind === 'memory') return { storage: modules['@tidings/adapter-memory'].memoryStorage() };
  const { sqliteStorage, tidingsEntities } = modules['@tidings/adapter-sqlite'];
  if (kind === 'sqlite') return { storage: sqliteStorage({ file }) };
  if (kind !== 'sqlite-orm') throw new Error(`unknown storage ${kind}`);
  // The application's MikroORM: its own entity and Tidings' in one database, so a handler's write commits with
  // the consumption. Were @tidings/adapter-mikro-orm given another copy of @mikro-orm/core, init would fail here.
  const { EntitySchema, MikroORM } = await load('@mikro-orm/sqlite');
  const Receipt = new EntitySchema({ name: 'Receipt', properties: { id: { type: 'string', primary: true } } });
  const orm = await MikroORM.init({ dbName: file, entities: [Receipt, ...tidingsEntities], allowGlobalContext: true });
  await orm.schema.updateSchema();
  return { storage: sqliteStorage({ orm }), orm, Receipt };
}

/**
 * Sends one message on an exactly-once topic, then again as a retry, consumes it and prints one JSON line: where
 * each package resolved, the two acks, the payloads consumed and, with the application's ORM, the rows it wrote.
 */
async function run(load, resolve, [kind, file]) {
  const resolved = Object.fromEntries(PACKAGES.map((name) => [name, resolve(name)]));
  const entries = Object.fromEntries(SUBPATHS.map((name) => [name, resolve(name)]));
  const modules = {};
  for (const name of PACKAGES) modules[name] = await load(name);
  const { Tidings, TidingsEventBus, lifecycleTables } = modules['@tidings/core'];
  const [adapter, diagrams] = await Promise.all(SUBPATHS.map(load));
  const { storage, orm, Receipt } = await openStorage(modules, load, kind, file);
  // A ledger made by the adapter entry emits on the main entry's event bus class: one copy of core, whichever entry loads it.
  const ledger = adapter.recordedLedger(
    storage,
    { name: 'orders', lifecycle: 'exactly-once/end-to-end', declaredAt: 0 },
    { name: 'default', maxDeliveries: 5 },
  );
  const shared = ledger.topic.parts.events instanceof TidingsEventBus;
  const diagram = diagrams.mermaidDiagram(diagrams.lifecycleGraph(lifecycleTables['at-most-once'])).split('\n')[1];
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
  const orders = tidings.topic('orders', { semantic: 'exactly-once' });
  const acks = [await orders.send({ n: 1 }, { id: 'order-1' }), await orders.send({ n: 1 }, { id: 'order-1' })];
  const consumed = [];
  const consumer = orders.consume(
    async (message, ctx) => {
      consumed.push(message.payload);
      if (Receipt) {
        ctx.em.persist(ctx.em.create(Receipt, { id: message.id }));
        await ctx.em.flush();
      }
    },
    { pollMs: 10 },
  );
  const deadline = Date.now() + 10_000;
  while (Object.keys((await tidings.counts('orders')).orders ?? {}).length > 0) {
    if (Date.now() > deadline) throw new Error(`not consumed in time: ${JSON.stringify(await tidings.counts('orders'))}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await consumer.stop();
  await tidings.close();
  const receipts = orm ? (await orm.em.fork().find(Receipt, {})).map((r) => r.id) : undefined;
  await orm?.close(true);
  process.stdout.write(`${JSON.stringify({ resolved, entries, shared, diagram, acks, consumed, receipts })}\n`);
}

module.exports = { run };
