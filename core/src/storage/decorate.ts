import type { StorageAdapter } from './contract.js';

/**
 * A storage adapter with some members replaced or added: members of `overrides` win; every other
 * member, optional ones included, is `inner`'s own, its methods bound to `inner`.
 */
export function decorateStorage<Tx, S extends StorageAdapter<Tx>, O extends Partial<StorageAdapter<Tx>> & object>(inner: S, overrides: O): S & O {
  const own = (prop: PropertyKey) => Object.prototype.hasOwnProperty.call(overrides, prop);
  // A Proxy rather than a copy, so members the inner adapter gains later (or defines as getters) still show through.
  return new Proxy(inner, {
    get(target, prop) {
      if (own(prop)) return overrides[prop as keyof O];
      const value = Reflect.get(target, prop, target) as unknown;
      // Bound to the adapter itself, so its private state (and #fields) work through the proxy.
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
    // So `'watch' in decorated` answers as the inner adapter would, for callers that probe optional members that way.
    has(target, prop) {
      return own(prop) || Reflect.has(target, prop);
    },
  }) as S & O;
}
