// A consumer in a process of its own for sqlite-wake.test.ts: consumes an at-least-once topic of a SQLite file,
// polling only every 10 s, on a storage Tidings opens (`file`) or on the application's MikroORM (`app`). Prints
// "ready" once idle, then "<id> <ms>" per message (send → handler start); closes when its stdin ends, then has
// nothing left to do: it must exit on its own.
import { MikroORM } from '@mikro-orm/sqlite';
import { Tidings, silentLogger } from '@tidings/core';
import { sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';

const [file, name, how] = process.argv.slice(2) as [string, string, 'file' | 'app'];
const now = () => performance.timeOrigin + performance.now();
const out = (line: string) => process.stdout.write(`${line}\n`);

const orm = how === 'app' ? await MikroORM.init({ dbName: file, entities: tidingsEntities, allowGlobalContext: true }) : undefined;
const tidings = await Tidings.create({ storage: sqliteStorage(orm ? { orm } : { file }), logger: silentLogger });
const topic = tidings.topic<{ at: number }>(name, { semantic: 'at-least-once' });
const consumer = topic.consume((m) => void out(`${m.id} ${now() - m.payload.at}`), { pollMs: 10_000 });
while (consumer.state !== 'idle') await new Promise((r) => setTimeout(r, 5));
out('ready');

process.stdin.resume();
process.stdin.on('end', async () => {
  await tidings.close();
  await orm?.close();
});
