// What the portal's screens read about one account beyond the plain lists: deliveries made in a
// window by their status now, attempts per minute, the subscriptions that need attention, and each
// subscription's latest delivery. Each is one small query on an index that already exists (or on
// attempt_stats, which recordAttempts keeps), so a dashboard never scans an account's history.
import { type Kysely, sql } from 'kysely';
import { firstIdAt } from '../domain/ids.js';
import { type Database, DELIVERY_STATUSES, type DeliveryStatus } from './schema.js';
import type { AttemptMinute, Delivery, SubscriptionsNeedingAttention } from './store.js';

export { DELIVERY_STATUSES };

/** What deliveryCountsSince counted: by status, and whether that was the whole window. */
export interface DeliveryCounts {
  counts: Record<DeliveryStatus, number>;
  /** False when the window held more than `cap` deliveries: the counts are of the newest `cap`. */
  complete: boolean;
}

/**
 * Delivery ids are monotonic ULIDs, so "created at or after `since`" is "id at or after the first
 * id of that millisecond": a range on `deliveries_account (account_id, id)`, with no index on
 * created_at (which would be one more index written per delivery). The status is in the row, not
 * the index, so each delivery counted is a row read: at most `cap` of them, the newest, so that a
 * busy account's dashboard costs a bounded read (on SQLite, one synchronous statement on the one
 * connection every request shares) however many deliveries its window holds.
 */
export async function deliveryCountsSince(
  db: Kysely<Database>,
  accountId: string,
  since: number,
  cap: number,
): Promise<DeliveryCounts> {
  const rows = await deliveryCountsQuery(db, accountId, since, cap).execute();
  const counts = Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, 0])) as Record<DeliveryStatus, number>;
  let total = 0;
  for (const row of rows) {
    if (row.status in counts) counts[row.status] = Number(row.n);
    total += Number(row.n);
  }
  return { counts, complete: total < cap };
}

/** The query of deliveryCountsSince, on its own so a test can ask SQLite for its plan. */
export function deliveryCountsQuery(db: Kysely<Database>, accountId: string, since: number, cap: number) {
  const newest = db
    .selectFrom('deliveries')
    .select('status')
    .where('account_id', '=', accountId)
    .where('id', '>=', firstIdAt('dlv', since))
    .orderBy('id', 'desc')
    .limit(cap)
    .as('newest');
  return db
    .selectFrom(newest)
    .select((eb) => ['newest.status', eb.fn.countAll<number | string>().as('n')])
    .groupBy('newest.status');
}

/** Summed over the processes that recorded them; only minutes with attempts come back. */
export async function attemptsPerMinute(
  db: Kysely<Database>,
  accountId: string,
  since: number,
  until: number,
): Promise<AttemptMinute[]> {
  const rows = await db
    .selectFrom('attempt_stats')
    .select((eb) => [
      'minute',
      eb.fn.sum<number | string>('delivered').as('delivered'),
      eb.fn.sum<number | string>('failed').as('failed'),
    ])
    .where('account_id', '=', accountId)
    .where('minute', '>=', since)
    .where('minute', '<', until)
    .groupBy('minute')
    .orderBy('minute')
    .execute();
  return rows.map((r) => ({ minute: Number(r.minute), delivered: Number(r.delivered), failed: Number(r.failed) }));
}

/**
 * Disabled subscriptions first, then those failing longest. The order is spelt with CASE rather
 * than NULLS LAST, which SQLite and PostgreSQL sort differently by default.
 */
export async function subscriptionsNeedingAttention(
  db: Kysely<Database>,
  accountId: string,
  limit: number,
): Promise<SubscriptionsNeedingAttention> {
  const needing = db
    .selectFrom('subscriptions')
    .where('account_id', '=', accountId)
    .where('deleted_at', 'is', null)
    .where('kind', '=', 'webhook')
    .where((eb) => eb.or([eb('status', '=', 'disabled'), eb('failing_since', 'is not', null)]));
  const total = await needing.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
  const subscriptions = await needing
    .selectAll()
    .orderBy(sql`case when status = 'disabled' then 0 else 1 end`)
    .orderBy(sql`case when failing_since is null then 1 else 0 end`)
    .orderBy('failing_since')
    .orderBy('id')
    .limit(limit)
    .execute();
  return { total: Number(total.n), subscriptions };
}

/**
 * One query per subscription on `deliveries_subscription (subscription_id, id)`, read backwards
 * from its end. One after another rather than all at once, so a page of 100 never takes every
 * connection of the PostgreSQL pool from the publishes waiting for one.
 */
export async function latestDeliveries(
  db: Kysely<Database>,
  accountId: string,
  subscriptionIds: string[],
): Promise<Map<string, Delivery>> {
  const out = new Map<string, Delivery>();
  for (const id of subscriptionIds) {
    const latest = await db
      .selectFrom('deliveries')
      .selectAll()
      .where('subscription_id', '=', id)
      .where('account_id', '=', accountId)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (latest) out.set(id, latest);
  }
  return out;
}
