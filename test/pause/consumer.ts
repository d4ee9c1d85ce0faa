// A consumer process for pause.test.ts: consumes `topic` from the database named on the command line and reports on
// stdout each message it handled and each change of its state, with the time.
import { Tidings, silentLogger } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';

const [target, topicName] = process.argv.slice(2) as [string, string];
const storage = target.startsWith('postgres') ? postgresStorage({ url: target }) : sqliteStorage({ file: target });
const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
const now = () => performance.timeOrigin + performance.now();
const consumer = tidings.topic<number>(topicName, { semantic: 'at-least-once' }).consume((m) => console.log(`handled ${m.payload} ${now()}`), { pollMs: 50 });
let last = '';
const report = () => {
  if (consumer.state !== last) console.log(`state ${(last = consumer.state)} ${now()}`);
};
const timer = setInterval(report, 5);
report();
console.log('ready');
process.stdin.on('end', async () => {
  clearInterval(timer);
  await tidings.close();
  process.exit(0);
});
process.stdin.resume();
