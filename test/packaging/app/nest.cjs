'use strict';
// A NestJS application in plain CommonJS, as `nest build` leaves one: Tidings in Nest on the application's MikroORM.
require('reflect-metadata');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { MikroOrmModule } = require('@mikro-orm/nestjs');
const { EntitySchema, MikroORM, SqliteDriver } = require('@mikro-orm/sqlite');
const { sqliteStorage, tidingsEntities } = require('@tidings/adapter-sqlite');
const { Consumer, TidingsModule, getTopicToken } = require('@tidings/nest');

const Receipt = new EntitySchema({ name: 'Receipt', properties: { order: { type: 'string', primary: true } } });

class Payments {
  async handle(message, ctx) {
    ctx.em.persist(ctx.em.create(Receipt, { order: message.id })); // commits with the consumption
  }
}
Consumer('orders', { pollMs: 10 })(Payments);

class AppModule {}
Module({
  imports: [
    MikroOrmModule.forRoot({
      driver: SqliteDriver,
      dbName: process.argv[2],
      entities: [Receipt, ...tidingsEntities],
      schemaGenerator: { skipTables: [/^tidings_/] },
    }),
    TidingsModule.forRootAsync({ inject: [MikroORM], useFactory: (orm) => ({ storage: sqliteStorage({ orm }) }) }),
    TidingsModule.forFeature([{ name: 'orders', semantic: 'exactly-once' }]),
  ],
  providers: [Payments],
})(AppModule);

async function main() {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  const orm = app.get(MikroORM);
  await orm.schema.updateSchema();
  const orders = app.get(getTopicToken('orders'));
  const acks = [await orm.em.fork().transactional((em) => orders.send({ n: 1 }, { id: 'order-1', em })), await orders.send({ n: 1 }, { id: 'order-1' })];
  const receipts = async () => (await orm.em.fork().find(Receipt, {})).map((r) => r.order);
  while ((await receipts()).length === 0) await new Promise((r) => setTimeout(r, 10));
  const resolved = Object.fromEntries(['@tidings/nest', '@tidings/core'].map((name) => [name, require.resolve(name)]));
  console.log(JSON.stringify({ resolved, acks, consumed: [], receipts: await receipts() }));
  await app.close();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
