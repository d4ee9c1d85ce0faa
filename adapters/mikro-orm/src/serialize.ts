/** A driver connection whose `query` takes a callback as its last function argument, or returns a promise (node-postgres). */
type Queryable = { query: (...args: unknown[]) => unknown };

/**
 * Makes a connection run its statements one after another, each starting once the one before has answered, so that
 * several handlers can share one transaction on it: node-postgres would queue them too, but calls `query()` while a
 * query runs deprecated. Returns the function that puts the connection's own `query` back.
 */
export function serializeQueries(conn: Queryable): () => void {
  const query = conn.query;
  let tail: Promise<void> = Promise.resolve();
  // Each call waits for the previous one to answer, and lets the next go when it has answered itself.
  const turn = (): [Promise<void>, () => void] => {
    const before = tail;
    let done!: () => void;
    tail = new Promise<void>((resolve) => (done = resolve));
    return [before, done];
  };
  conn.query = function (this: unknown, ...args: unknown[]): unknown {
    const [before, done] = turn();
    const at = args.findIndex((a) => typeof a === 'function');
    if (at >= 0) {
      const callback = args[at] as (...results: unknown[]) => void;
      args[at] = (...results: unknown[]) => {
        done();
        callback(...results);
      };
      void before.then(() => query.apply(conn, args));
      return undefined;
    }
    return before.then(() => query.apply(conn, args) as Promise<unknown>).finally(done);
  };
  return () => {
    conn.query = query;
  };
}
