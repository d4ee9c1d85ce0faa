import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { MESSAGE_VIEWS, TidingsError } from '@tidings/core';
import { dlqList, dlqRedrive, processOutput, purge, stats, type Output } from './commands.js';
import { DEFAULT_DASHBOARD_PORT, serveDashboard } from './dashboard.js';
import { DEFAULT_DB } from './database.js';
import { DEFAULT_PAGE, MAX_PAGE, messagesList, messagesShow } from './messages.js';
import { dlqDiscard, emptySubscription, pauseSubscription, resumeSubscription, retryNow } from './operator.js';
import { subscriptionsList, subscriptionsRemove } from './subscriptions.js';
import type { DemoOptions } from './demo.js';
import { parseDuration, parseInteger } from './parse.js';
import { PROVE_RUNS, prove } from './prove.js';
import { VIZ_FORMATS, VIZ_TARGETS, viz } from './viz.js';

/** Gathers a repeated option (`--id a --id b`) into a list. */
const collect = (value: string, values: string[] = []) => [...values, value];

const FAULTS = ['none', 'default', 'heavy'] as const satisfies ReadonlyArray<DemoOptions['faults']>;
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Runs the `tidings` command line (`argv` as in `process.argv`, node and script first); resolves to the exit code, never exits. */
export async function run(argv: string[], output: Output = processOutput): Promise<number> {
  let exitCode = 0;
  let db: string | undefined;
  const dbOption = () => new Option('--db <file-or-url>', 'SQLite file or postgres:// URL').default(DEFAULT_DB).env('TIDINGS_DB');
  const remember = <T extends { db?: string }>(o: T): T => ((db = o.db), o);

  const program = new Command('tidings')
    .description(
      'Look into and operate a Tidings database: counts per topic and subscription, messages by state, pause and resume, retry now, empty, ' +
        'dead letters (list, redrive, discard), subscriptions, purge; watch it live, draw its machines, or run the demo.',
    )
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => output.out(text.replace(/\n$/, '')),
      writeErr: (text) => output.err(text.replace(/\n$/, '')),
      outputError: (text, write) => write(`tidings: ${text.replace(/^error: /, '')}`),
    });

  program
    .command('stats')
    .description(
      "message counts by state, a row per topic and subscription (declared topics and subscriptions without messages too), with the topic's ordering and, when any is paused, since when",
    )
    .addOption(dbOption())
    .option('--topic <topic>', 'only this topic')
    .option('--subscription <name>', 'only the subscriptions of this name')
    .option('--json', 'print JSON')
    .action(async (o: { db: string; topic?: string; subscription?: string; json?: boolean }) => {
      await stats(remember(o), output);
    });

  const subscriptionOption = () => new Option('--subscription <name>', 'the subscription (default: default, which a topic declared without subscriptions has)');
  const dlq = program.command('dlq').description("dead letters of a topic's subscription: list them, put them back for delivery, or discard them");
  dlq
    .command('list')
    .description("a subscription's dead letters, oldest first")
    .argument('<topic>')
    .addOption(dbOption())
    .addOption(subscriptionOption())
    .option('--limit <n>', 'how many to show', '20')
    .option('--json', 'print JSON')
    .action(async (topic: string, o: { db: string; subscription?: string; limit: string; json?: boolean }) => {
      await dlqList({ ...remember(o), topic, limit: parseInteger('--limit', o.limit) }, output);
    });
  dlq
    .command('redrive')
    .description("put a subscription's dead letters (or only --id ones) back for delivery")
    .argument('<topic>')
    .addOption(dbOption())
    .addOption(subscriptionOption())
    .option('--id <id>', 'a dead letter to redrive (repeat for several; default: all)', collect)
    .option('--json', 'print JSON')
    .action(async (topic: string, o: { db: string; subscription?: string; id?: string[]; json?: boolean }) => {
      const result = await dlqRedrive({ ...remember(o), topic, ids: o.id }, output);
      if (result.missing.length > 0) exitCode = 1;
    });

  dlq
    .command('discard')
    .description("drop a subscription's dead letters (or only --id ones) for good; says how many and refuses without --yes")
    .argument('<topic>')
    .addOption(dbOption())
    .addOption(subscriptionOption())
    .option('--id <id>', 'a dead letter to discard (repeat for several; default: all)', collect)
    .option('--yes', 'drop them (without it, only says how many it would)')
    .option('--json', 'print JSON')
    .action(async (topic: string, o: { db: string; subscription?: string; id?: string[]; yes?: boolean; json?: boolean }) => {
      const result = await dlqDiscard({ ...remember(o), topic, ids: o.id }, output);
      if (result.missing.length > 0) exitCode = 1;
    });

  for (const [verb, description] of [
    ['pause', 'pause a subscription for every process, durably: its consumers stop leasing within a second and finish what they hold; sends still store'],
    ['resume', "let a paused subscription's consumers lease again, in every process"],
  ] as const) {
    program
      .command(verb)
      .description(description)
      .argument('<topic>')
      .addOption(dbOption())
      .addOption(subscriptionOption())
      .option('--json', 'print JSON')
      .action(async (topic: string, o: { db: string; subscription?: string; json?: boolean }) => {
        await (verb === 'pause' ? pauseSubscription : resumeSubscription)({ ...remember(o), topic }, output);
      });
  }

  const messages = program.command('messages').description("a subscription's messages: a page of them by state, id or key, or one in full");
  messages
    .command('list')
    .description('a page of messages in delivery order (id, key, state, deliveries, dates, last error), and the command for the next page')
    .argument('<topic>')
    .addOption(dbOption())
    .addOption(subscriptionOption())
    // Checked by messagesList() rather than by commander, so a function caller gets the same typed error.
    .option('--state <state>', `${MESSAGE_VIEWS.join(' | ')} (default: waiting; with --id or --key, every state)`)
    .option('--id <id>', 'only the message with this id')
    .option('--key <key>', 'only messages with this ordering key')
    .option('--after <cursor>', 'the page after this cursor (printed under the page before)')
    .option('--limit <n>', `messages per page, 1 to ${MAX_PAGE}`, String(DEFAULT_PAGE))
    .option('--json', 'print JSON: { messages, next }')
    .action(
      async (
        topic: string,
        o: { db: string; subscription?: string; state?: string; id?: string; key?: string; after?: string; limit: string; json?: boolean },
      ) => {
        await messagesList({ ...remember(o), topic, limit: parseInteger('--limit', o.limit, 1, MAX_PAGE) }, output);
      },
    );
  messages
    .command('show')
    .description('one message in full: payload, headers, deliveries, dates, lease, last error with its stack')
    .argument('<topic>')
    .argument('<id>', 'the message id')
    .addOption(dbOption())
    .addOption(subscriptionOption())
    .option('--json', 'print JSON')
    .action(async (topic: string, id: string, o: { db: string; subscription?: string; json?: boolean }) => {
      await messagesShow({ ...remember(o), topic, id }, output);
    });

  program
    .command('empty')
    .description(
      "drop a subscription's waiting and delayed messages, not the leased ones; says how many and refuses without --yes (unlike purge, which drops only what has expired)",
    )
    .argument('<topic>')
    .addOption(dbOption())
    .addOption(subscriptionOption())
    .option('--yes', 'drop them (without it, only says how many it would)')
    .option('--json', 'print JSON')
    .action(async (topic: string, o: { db: string; subscription?: string; yes?: boolean; json?: boolean }) => {
      await emptySubscription({ ...remember(o), topic }, output);
    });

  program
    .command('retry-now')
    .description("make a subscription's delayed messages (a retry's backoff, a send's delayMs), or only --id ones, due now")
    .argument('<topic>')
    .addOption(dbOption())
    .addOption(subscriptionOption())
    .option('--id <id>', 'a delayed message to retry now (repeat for several; default: all)', collect)
    .option('--json', 'print JSON')
    .action(async (topic: string, o: { db: string; subscription?: string; id?: string[]; json?: boolean }) => {
      const result = await retryNow({ ...remember(o), topic, ids: o.id }, output);
      if (result.missing.length > 0) exitCode = 1;
    });

  const subscriptions = program.command('subscriptions').description('the subscriptions storage records: list them, or remove one with the copies it holds');
  subscriptions
    .command('list')
    .description('recorded subscriptions by topic and name, with their delivery limit, dead-letter topic and messages')
    .addOption(dbOption())
    .option('--topic <topic>', 'only this topic')
    .option('--json', 'print JSON')
    .action(async (o: { db: string; topic?: string; json?: boolean }) => {
      await subscriptionsList(remember(o), output);
    });
  subscriptions
    .command('remove')
    .description('forget a subscription and drop every copy it holds; refused while any of them is leased, unless --force')
    .argument('<topic>')
    .argument('<name>', 'the subscription')
    .addOption(dbOption())
    .option('--force', 'remove it even while copies are leased (their consumers lose the leases)')
    .option('--json', 'print JSON')
    .action(async (topic: string, subscription: string, o: { db: string; force?: boolean; json?: boolean }) => {
      await subscriptionsRemove({ ...remember(o), topic, subscription }, output);
    });

  program
    .command('purge')
    .description(
      "retention clean-up: drop expired dedup and idempotency records, and dead letters older than an age (tidings empty drops a queue's waiting messages)",
    )
    .addOption(dbOption())
    .option('--topic <topic>', 'only this topic')
    .option('--dead-older-than <age>', 'also drop dead letters this old: ms, or 30m, 12h, 7d')
    .option('--json', 'print JSON')
    .action(async (o: { db: string; topic?: string; deadOlderThan?: string; json?: boolean }) => {
      const deadOlderThanMs = o.deadOlderThan === undefined ? undefined : parseDuration('--dead-older-than', o.deadOlderThan);
      await purge({ ...remember(o), deadOlderThanMs }, output);
    });

  program
    .command('demo')
    .description('run the four semantics side by side under injected faults')
    .option('--messages <n>', 'messages per semantic', '2000')
    .option('--seed <n>', 'seed of the fault schedule (default: random, printed)')
    .addOption(new Option('--faults <level>', 'how many faults to inject').choices(FAULTS).default('default'))
    .option('--dir <path>', "folder for the demo's files")
    .option('--json', 'print JSON')
    .action(async (o: { messages: string; seed?: string; faults: DemoOptions['faults']; dir?: string; json?: boolean }) => {
      const messages = parseInteger('--messages', o.messages);
      const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : parseInteger('--seed', o.seed, 0);
      // On stderr, so --json output stays parseable; a failing run is only worth something if it replays.
      if (o.seed === undefined) output.err(`seed ${seed} (replay with --seed ${seed})`);
      // Loaded only when asked for, so the database commands start without the demo's dependencies.
      const { runDemo } = await import('./demo.js');
      exitCode = await runDemo({ messages, seed, faults: o.faults, json: o.json === true, dir: o.dir });
    });

  program
    .command('prove')
    .description(
      'prove the delivery guarantees on your own database: real producer and consumer processes SIGKILLed at seeded moments, lost acks, ' +
        'every semantic, ordering keys and a batch handler, then a checker counts lost and duplicated messages; exits 1 if any guarantee broke. ' +
        'Works in a file beside a SQLite database or in a schema of its own on PostgreSQL, removed after',
    )
    .addOption(dbOption())
    .option('--messages <n>', 'messages each run sends', '200')
    .option('--kills <n>', 'SIGKILLs each run sends at least', '3')
    .option('--lost-acks <share>', 'share of producer acks lost after the store, 0 to 0.99', '0.2')
    .option('--seed <n>', 'seed of every kill and fault (default: random, printed)')
    .option('--only <runs>', `comma-separated runs: ${PROVE_RUNS.map((r) => r.name).join(', ')}`)
    .option('--keep', "leave the run's file or schema in place, to look into")
    .option('--json', 'print JSON')
    .action(async (o: { db: string; messages: string; kills: string; lostAcks: string; seed?: string; only?: string; keep?: boolean; json?: boolean }) => {
      const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : parseInteger('--seed', o.seed, 0);
      if (o.seed === undefined) output.err(`seed ${seed} (replay with --seed ${seed})`);
      const result = await prove(
        {
          db: remember(o).db,
          messages: parseInteger('--messages', o.messages),
          kills: parseInteger('--kills', o.kills),
          lostAcks: Number(o.lostAcks),
          seed,
          only: o.only?.split(',').map((s) => s.trim()),
          keep: o.keep === true,
          json: o.json === true,
        },
        output,
      );
      if (!result.held) exitCode = 1;
    });

  program
    .command('dashboard')
    .description('serve a live web dashboard of the database (counts on the lifecycle diagrams, dead letters and redrive, leases, /metrics) until Ctrl-C')
    .addOption(dbOption())
    .option('--port <n>', `port to listen on (0: any free one)`, String(DEFAULT_DASHBOARD_PORT))
    .option('--host <host>', 'address to listen on; anything but loopback needs --token', '127.0.0.1')
    .addOption(new Option('--token <token>', 'token every request must carry (Bearer header, or the page asks for it)').env('TIDINGS_DASHBOARD_TOKEN'))
    .option(
      '--allowed-host <name>',
      'a host name to answer to besides localhost and IP addresses (repeat for several; .example.com for the domain and its subdomains)',
      (name: string, names: string[] = []) => [...names, name],
    )
    .action(async (o: { db: string; port: string; host: string; token?: string; allowedHost?: string[] }) => {
      exitCode = await serveDashboard({ ...remember(o), allowedHosts: o.allowedHost }, output);
    });

  program
    .command('viz')
    .description('draw a lifecycle machine, the consumer machine, or all lifecycles, from their XState definitions')
    .argument('<target>', VIZ_TARGETS.join(' | '))
    // Checked by viz() rather than by commander, so a function caller gets the same typed error.
    .option('--format <format>', VIZ_FORMATS.join(' | '), 'mermaid')
    .option('--out <file>', 'write to this file instead of printing (its folder must exist)')
    .action(async (target: string, o: { format: string; out?: string }) => {
      await viz({ target, ...o }, output);
    });

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    // Commander has already printed its own message (or the help it was asked for).
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof TidingsError) {
      output.err(`tidings: ${redact(error.message, db)}`);
      return 1;
    }
    // Not one of ours: a bug or an unforeseen failure, where the stack is what helps.
    output.err(`tidings: unexpected error: ${redact((error as Error)?.stack ?? String(error), db)}`);
    return 1;
  }
}

/** Removes the password of a postgres:// `--db` from a message, whatever layer wrote it. */
function redact(message: string, db: string | undefined): string {
  if (!db) return message;
  let password: string;
  try {
    password = new URL(db).password;
  } catch {
    return message;
  }
  if (!password) return message;
  let safe = message;
  for (const p of new Set([password, decodeURIComponent(password)])) safe = safe.split(p).join('***');
  return safe;
}
