// The command line of bench/run.ts and bench/peers.ts.

/** Options both scripts take. */
export interface BenchArgs {
  /** Print the results as one JSON document on stdout (the table otherwise). */
  json: boolean;
  /** Small counts: a smoke test of every code path, not a measurement. */
  quick: boolean;
  /** Only scenarios whose name contains this (case-insensitive), with the baselines they are compared with. */
  only?: string;
  /** Messages per end-to-end batch scenario. */
  messages?: number;
  /** Rounds per system (peers). */
  rounds?: number;
  /** A saved `npm run bench -- --json` whose rows the peers' targets read instead of running those scenarios again. */
  bench?: string;
}

const USAGE = `options: --json  --quick  --only WORD  --messages N  --rounds N (peers)  --bench FILE (peers)`;

/** Parses `argv` (without node and the script); throws a usage error on anything else. */
export function parseArgs(argv: readonly string[]): BenchArgs {
  const args: BenchArgs = { json: false, quick: false };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    const value = () => {
      const v = argv[++k];
      if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value; ${USAGE}`);
      return v;
    };
    const count = () => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a whole number >= 1; ${USAGE}`);
      return n;
    };
    if (flag === '--json') args.json = true;
    else if (flag === '--quick') args.quick = true;
    else if (flag === '--only') args.only = value().toLowerCase();
    else if (flag === '--messages') args.messages = count();
    else if (flag === '--rounds') args.rounds = count();
    else if (flag === '--bench') args.bench = value();
    else throw new Error(`unknown argument ${flag}; ${USAGE}`);
  }
  return args;
}

/** This process's arguments; a usage error is printed and the process exits with 2. */
export function processArgs(): BenchArgs {
  try {
    return parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
}
