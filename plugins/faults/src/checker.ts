import { InvalidOptionsError, LIFECYCLES, type Lifecycle } from '@tidings/core';

/**
 * One effect a consumer recorded, from the run (incarnation) of the process that recorded it: 0 for the
 * first, 1 after the first crash, and so on. A plain key string means incarnation 0.
 */
export interface Effect {
  key: string;
  incarnation: number;
  /** The subscription whose consumer recorded it, when the history holds several. */
  subscription?: string;
  /** The message's ordering key, when it was sent with one. */
  orderingKey?: string;
  /** Its place among its ordering key's messages as the producer sent them: 0, 1, 2, … */
  position?: number;
  /** Its handler started while a message of its ordering key stored before it was still unsettled in its subscription. */
  overtook?: boolean;
}

/** A crash point hit `key` in `incarnation`; an effect for it in a later incarnation counts as recovered. */
export interface CrashRecord {
  key: string;
  incarnation: number;
}

/**
 * What a run's producers were told and what its consumers did, by message key: the application's own key
 * (e.g. the payload's id), not the broker id, so an at-least-once retry under a fresh broker id shows up as
 * a duplicate of the one key.
 */
export interface DeliveryHistory {
  /** The lifecycle the run used (a label; `guaranteeHeld` takes the lifecycle to judge by). */
  lifecycle: Lifecycle;
  /** Every key a producer attempted to send. */
  sent: string[];
  /** Keys whose send the producer was told succeeded. */
  acked: string[];
  /** Keys the broker holds or held, when known; exactly-once/broker counts losses from these (else from `acked`). */
  stored?: string[];
  /** One entry per effect a consumer recorded; duplicates kept. */
  consumed: Array<string | Effect>;
  /** Keys a crash point hit, with the incarnation that crashed. */
  crashed?: CrashRecord[];
}

/** Counts of a history (distinct keys unless said otherwise), with the keys behind each anomaly. */
export interface DeliveryCheck {
  lifecycle: Lifecycle;
  sent: number;
  acked: number;
  /** Distinct stored keys (the acked ones when the history does not say what was stored). */
  stored: number;
  /** Effects recorded, duplicates included. */
  delivered: number;
  /** Keys with at least one effect. */
  distinct: number;
  /** Acked keys with no effect. */
  lost: number;
  /** Stored keys with no effect: what broker-scope exactly-once promises. */
  lostStored: number;
  /** Keys with more than one effect. */
  duplicated: number;
  /** Keys with an effect that no producer sent. */
  unexpected: number;
  /** Keys a crash hit that had an effect in a later incarnation. */
  recovered: number;
  /**
   * Keys handled out of order: a handler that started while an earlier message of its ordering key was unsettled,
   * or an effect recorded after one of a later message of its key.
   */
  outOfOrder: number;
  /** Whether any effect carried an ordering key: only then does order count. */
  ordered: boolean;
  keys: { lost: string[]; lostStored: string[]; duplicated: string[]; unexpected: string[]; recovered: string[]; outOfOrder: string[] };
}

/** A lifecycle's guarantee judged on a checked history, with the rule in words (for a failing test's message). */
export interface GuaranteeVerdict {
  held: boolean;
  rule: string;
}

function keyList(name: string, v: unknown): string[] {
  if (!Array.isArray(v)) throw new InvalidOptionsError(`DeliveryHistory.${name} must be an array of message keys, got ${typeof v}.`);
  return v as string[];
}

/** Counts lost, duplicated, unexpected and recovered messages of a recorded history, in the spirit of Jepsen's queue checkers. */
export function checkDeliveries(history: DeliveryHistory): DeliveryCheck {
  if (typeof history !== 'object' || history === null) throw new InvalidOptionsError('checkDeliveries needs a DeliveryHistory object.');
  const sent = new Set(keyList('sent', history.sent));
  const acked = new Set(keyList('acked', history.acked));
  const stored = new Set(history.stored === undefined ? acked : keyList('stored', history.stored));
  const effects = keyList('consumed', history.consumed).map((e): Effect => (typeof e === 'string' ? { key: e, incarnation: 0 } : e));

  const times = new Map<string, number>();
  for (const e of effects) times.set(e.key, (times.get(e.key) ?? 0) + 1);
  const lost = [...acked].filter((k) => !times.has(k));
  const lostStored = [...stored].filter((k) => !times.has(k));
  const duplicated = [...times].filter(([, n]) => n > 1).map(([k]) => k);
  // A key acked or stored was sent, even if the history's producer forgot to write it down.
  const unexpected = [...times.keys()].filter((k) => !sent.has(k) && !acked.has(k) && !stored.has(k));
  const recovered = new Set<string>();
  for (const c of history.crashed ?? []) {
    if (effects.some((e) => e.key === c.key && e.incarnation > c.incarnation)) recovered.add(c.key);
  }
  const outOfOrder = outOfOrderKeys(effects);

  return {
    lifecycle: history.lifecycle,
    sent: sent.size,
    acked: acked.size,
    stored: stored.size,
    delivered: effects.length,
    distinct: times.size,
    lost: lost.length,
    lostStored: lostStored.length,
    duplicated: duplicated.length,
    unexpected: unexpected.length,
    recovered: recovered.size,
    outOfOrder: outOfOrder.length,
    ordered: effects.some((e) => e.orderingKey !== undefined),
    keys: { lost, lostStored, duplicated, unexpected, recovered: [...recovered], outOfOrder },
  };
}

/**
 * The keys of effects out of order, per subscription and ordering key, in the order the effects were recorded: one
 * whose handler overtook an unsettled earlier message, and one recorded after an effect of a later message of its
 * key (a redelivery of the same message after a crash is in order).
 */
function outOfOrderKeys(effects: readonly Effect[]): string[] {
  const furthest = new Map<string, number>();
  const out = new Set<string>();
  for (const e of effects) {
    if (e.orderingKey === undefined) continue;
    if (e.overtook) out.add(e.key);
    if (e.position === undefined) continue;
    const group = `${e.subscription ?? ''}\n${e.orderingKey}`;
    const seen = furthest.get(group) ?? -1;
    if (e.position < seen) out.add(e.key);
    else furthest.set(group, e.position);
  }
  return [...out];
}

/**
 * One check per subscription: each subscription's effects (and, when the history says what each stored, its
 * stored keys) against the same sent and acked keys, since every subscription must get every message.
 */
export function checkSubscriptions(history: DeliveryHistory & { storedBySubscription?: Record<string, string[]> }): Record<string, DeliveryCheck> {
  const effects = keyList('consumed', history.consumed).map((e): Effect => (typeof e === 'string' ? { key: e, incarnation: 0 } : e));
  const names = [...new Set([...effects.map((e) => e.subscription ?? ''), ...Object.keys(history.storedBySubscription ?? {})])].sort();
  return Object.fromEntries(
    names.map((name) => [
      name,
      checkDeliveries({
        ...history,
        stored: history.storedBySubscription?.[name] ?? history.stored,
        consumed: effects.filter((e) => (e.subscription ?? '') === name),
      }),
    ]),
  );
}

function sample(keys: string[]): string {
  return keys.length === 0 ? '' : ` (${keys.slice(0, 5).join(', ')}${keys.length > 5 ? ', ...' : ''})`;
}

/**
 * Whether `lifecycle`'s promise held: at-most-once never twice, nor again after a crash; at-least-once no acked message lost;
 * exactly-once/broker every stored message once; exactly-once/end-to-end every acked message once; and, on an ordered
 * history, every lifecycle with leases each key's messages one at a time in order.
 * No semantic allows an effect for a message nobody sent.
 */
export function guaranteeHeld(lifecycle: Lifecycle, result: DeliveryCheck): GuaranteeVerdict {
  if (!(LIFECYCLES as readonly string[]).includes(lifecycle)) {
    throw new InvalidOptionsError(`guaranteeHeld needs a lifecycle (${LIFECYCLES.join(', ')}), got ${String(lifecycle)}.`);
  }
  const conditions: Array<[string, number, string[]]> = [];
  if (lifecycle !== 'at-least-once') conditions.push(['duplicated', result.duplicated, result.keys.duplicated]);
  // A lease holds a key until its message is settled; at-most-once deletes at hand-out, so across consumers it cannot.
  if (result.ordered && lifecycle !== 'at-most-once') conditions.push(['out of order', result.outOfOrder, result.keys.outOfOrder]);
  // At-most-once never hands a message out again: what a crash hit is gone, never consumed by a later incarnation.
  if (lifecycle === 'at-most-once') conditions.push(['redelivered after a crash', result.recovered, result.keys.recovered]);
  if (lifecycle === 'exactly-once/broker') conditions.push(['lost of stored', result.lostStored, result.keys.lostStored]);
  else if (lifecycle !== 'at-most-once') conditions.push(['lost of acked', result.lost, result.keys.lost]);
  conditions.push(['unexpected', result.unexpected, result.keys.unexpected]);
  const held = conditions.every(([, n]) => n === 0);
  const rule = `${lifecycle}: ${conditions.map(([name, n, keys]) => `${name} = 0 (got ${n}${sample(keys)})`).join(', ')}`;
  return { held, rule };
}
