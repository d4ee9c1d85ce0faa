import { MikroOrmModule } from '@mikro-orm/nestjs';
import { MikroORM, SqliteDriver } from '@mikro-orm/sqlite';
import { Module, type OnModuleInit } from '@nestjs/common';
import { sqliteConnectionSetup, sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';
import { TidingsModule } from '@tidings/nest';
import { AppConfig } from './config';
import { ConfirmationsConsumer, ConfirmationsController } from './confirmations';
import { Confirmation, Order, Payment } from './entities';
import { OrdersController } from './orders';
import { PaymentGateway } from './payment-gateway';
import { PaymentsConsumer, PaymentsController } from './payments';

@Module({ providers: [AppConfig], exports: [AppConfig] })
export class ConfigModule {}

@Module({
  imports: [
    MikroOrmModule.forRootAsync({
      driver: SqliteDriver, // so MikroORM and EntityManager from @mikro-orm/sqlite can be injected
      imports: [ConfigModule],
      inject: [AppConfig],
      useFactory: (config: AppConfig) => ({
        driver: SqliteDriver,
        dbName: config.database,
        entities: [Order, Payment, Confirmation, ...tidingsEntities],
        pool: { afterCreate: sqliteConnectionSetup() },
        // Tidings creates and migrates its own tables; the application's schema tools leave them alone.
        schemaGenerator: { skipTables: [/^tidings_/] },
      }),
    }),
    TidingsModule.forRootAsync({
      imports: [ConfigModule],
      inject: [MikroORM, AppConfig],
      useFactory: (orm: MikroORM, config: AppConfig) => ({ storage: sqliteStorage({ orm }), topicDefaults: { leaseMs: config.leaseMs } }),
    }),
    TidingsModule.forFeature([
      {
        name: 'orders',
        semantic: 'exactly-once',
        scope: 'end-to-end',
        maxDeliveries: 3,
        // Each subscription gets every order: a declined payment neither delays nor prevents its confirmation.
        subscriptions: { payments: { deadLetter: 'orders.dead' }, confirmations: {} },
      },
    ]),
    ConfigModule,
  ],
  controllers: [OrdersController, PaymentsController, ConfirmationsController],
  providers: [PaymentsConsumer, ConfirmationsConsumer, PaymentGateway],
})
export class AppModule implements OnModuleInit {
  constructor(private readonly orm: MikroORM) {}

  /** Brings the application's tables up to date (a real app would run its migrations here). */
  async onModuleInit() {
    await this.orm.schema.updateSchema();
  }
}
