// Ordered delivery per document. A subscription with `ordering: "document"` gives each of its
// deliveries an order_key (the event's data.document_id). Of one key's unfinished deliveries only
// the oldest may be pending, sending or held; the rest are `waiting`, which no claim sees. When the
// one in front is delivered, finally fails or is cancelled, the next waiting one (by id: ids are
// made in publish order) becomes pending. The claim statement is untouched, so the order costs
// nothing to subscriptions that do not ask for it, and a retry, a lease taken over after a crash,
// or several workers claiming at once can never let a later delivery overtake an earlier one.
//
// Gating (at publish) and promoting (when a delivery finishes) must not interleave for one key: a
// publish could see the front delivery still unfinished while the transaction finishing it finds
// nothing waiting yet, and the new delivery would wait forever. SQLite has one writer, so they
// cannot. PostgreSQL takes a transaction-scoped advisory lock per key, in sorted order, in both.

import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { DialectName } from '../dialect.js';
import type { Database, DeliveriesTable, DeliveryStatus } from '../schema.js';
import { chunk } from './chunk.js';

export interface OrderKey {
  subscriptionId: string;
  orderKey: string;
}

/** Subscription ids hold no spaces, so the first space ends one (and PostgreSQL text takes no NUL). */
const keyOf = (subscriptionId: string, orderKey: string): string => `${subscriptionId} ${orderKey}`;

/** PostgreSQL: serializes gating and promoting per key until the transaction ends. */
async function lockKeys(trx: Kysely<Database>, dialect: DialectName, keys: string[]): Promise<void> {
  if (dialect !== 'postgres' || keys.length === 0) return;
  const sorted = [...new Set(keys)].sort();
  // Volatile functions in the select list run after the sort, so the locks are taken in key order
  // and two transactions locking overlapping keys cannot deadlock on them.
  await sql`select pg_advisory_xact_lock(hashtextextended(k, 17)) from unnest(${sorted}::text[]) as k order by k`.execute(
    trx,
  );
}

const OPEN: readonly DeliveryStatus[] = ['pending', 'sending', 'held', 'waiting', 'postponed'];

/**
 * Makes each new keyed delivery wait when an earlier unfinished delivery of its key exists, in
 * the database or earlier in `rows` (which are in publish order). Call before inserting them.
 */
export async function gateOrdered(trx: Kysely<Database>, dialect: DialectName, rows: DeliveriesTable[]): Promise<void> {
  const keyed = rows.filter((r) => r.order_key !== null && r.subscription_id !== null);
  if (keyed.length === 0) return;
  const keys = keyed.map((r) => keyOf(r.subscription_id as string, r.order_key as string));
  await lockKeys(trx, dialect, keys);
  const busy = new Set<string>();
  for (const part of chunk(keyed, 400)) {
    const found = await trx
      .selectFrom('deliveries')
      .select(['subscription_id', 'order_key'])
      .where('order_key', 'is not', null)
      .where('subscription_id', 'in', [...new Set(part.map((r) => r.subscription_id as string))])
      .where('order_key', 'in', [...new Set(part.map((r) => r.order_key as string))])
      .where('status', 'in', OPEN)
      .execute();
    for (const f of found) busy.add(keyOf(f.subscription_id as string, f.order_key as string));
  }
  for (const row of keyed) {
    const key = keyOf(row.subscription_id as string, row.order_key as string);
    if (busy.has(key)) {
      row.status = 'waiting';
      row.lease_owner = null;
      row.attempt_count = 0;
    } else busy.add(key);
  }
}

/**
 * After deliveries of these keys finished (delivered, finally failed, cancelled): makes the next
 * waiting delivery of each key pending (or held, when its subscription is not active), unless an
 * unfinished one is still in front of it. Returns how many moved.
 */
export async function promoteWaiting(
  trx: Kysely<Database>,
  dialect: DialectName,
  finished: OrderKey[],
  now: number,
): Promise<number> {
  if (finished.length === 0) return 0;
  const byKey = new Map<string, OrderKey>();
  for (const k of finished) byKey.set(keyOf(k.subscriptionId, k.orderKey), k);
  await lockKeys(trx, dialect, [...byKey.keys()]);
  let moved = 0;
  for (const part of chunk([...byKey.values()], 200)) {
    const rows = await trx
      .selectFrom('deliveries as d')
      .innerJoin('subscriptions as s', 's.id', 'd.subscription_id')
      .select(['d.id', 'd.subscription_id', 'd.order_key', 'd.status', 's.status as sub_status'])
      .where('d.order_key', 'is not', null)
      .where('d.subscription_id', 'in', [...new Set(part.map((k) => k.subscriptionId))])
      .where('d.order_key', 'in', [...new Set(part.map((k) => k.orderKey))])
      .where('d.status', 'in', OPEN)
      .orderBy('d.id')
      .execute();
    const front = new Map<string, (typeof rows)[number]>();
    for (const row of rows) {
      const key = keyOf(row.subscription_id as string, row.order_key as string);
      if (byKey.has(key) && !front.has(key)) front.set(key, row);
    }
    const toPending: string[] = [];
    const toHeld: string[] = [];
    for (const row of front.values()) {
      if (row.status !== 'waiting') continue;
      (row.sub_status === 'active' ? toPending : toHeld).push(row.id);
    }
    for (const [ids, status] of [
      [toPending, 'pending'],
      [toHeld, 'held'],
    ] as const) {
      if (ids.length === 0) continue;
      const result = await trx
        .updateTable('deliveries')
        .set({ status, next_attempt_at: now, updated_at: now })
        .where('id', 'in', ids)
        .where('status', '=', 'waiting')
        .executeTakeFirst();
      moved += Number(result.numUpdatedRows);
    }
  }
  return moved;
}

/** The order keys of these deliveries that have one. */
export async function orderKeysOf(trx: Kysely<Database>, deliveryIds: string[]): Promise<OrderKey[]> {
  const keys: OrderKey[] = [];
  for (const ids of chunk(deliveryIds, 500)) {
    const rows = await trx
      .selectFrom('deliveries')
      .select(['subscription_id', 'order_key'])
      .where('id', 'in', ids)
      .where('order_key', 'is not', null)
      .execute();
    for (const r of rows) {
      if (r.subscription_id !== null && r.order_key !== null) {
        keys.push({ subscriptionId: r.subscription_id, orderKey: r.order_key });
      }
    }
  }
  return keys;
}
