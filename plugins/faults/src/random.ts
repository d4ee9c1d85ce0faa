import { InvalidOptionsError } from '@tidings/core';

/** A seeded pseudo-random generator (mulberry32): the same seed gives the same sequence of numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An independent stream per fault kind, so turning one fault on does not shift the others' draws. */
export function substream(seed: number, salt: number): () => number {
  return seededRandom((seed ^ Math.imul(salt + 1, 0x9e3779b9)) >>> 0);
}

/**
 * The seed a run should use: `TIDINGS_SEED` from the environment when set (to replay a failure), else a fresh one.
 * Print it with the run's result so a failure can be replayed.
 */
export function pickSeed(env: string | undefined = process.env.TIDINGS_SEED): number {
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n)) throw new InvalidOptionsError(`TIDINGS_SEED must be an integer (the seed a failing run printed), got ${JSON.stringify(env)}.`);
    return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32);
}
