import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { AppConfig } from './config';

async function bootstrap() {
  const app = await NestFactory.create(AppModule);
  // On SIGTERM, Nest stops taking requests, Tidings drains the payments in flight, then MikroORM closes.
  app.enableShutdownHooks();
  await app.listen(app.get(AppConfig).port, '127.0.0.1');
  console.log(`listening on ${await app.getUrl()}`);
}

void bootstrap();
