// Deliveries made for events already stored: recovering what a subscription missed (events
// published while it was disabled, or before a fix) and sending one event to one subscription
// again. New deliveries are queued like any other: due now for an active subscription, held for a
// paused or disabled one until it is active again.
import { sql } from 'kysely';
import { ERASED_DATA } from '../../domain/erasure.js';
import { splitEventTypes } from '../../domain/events.js';
import { newId } from '../../domain/ids.js';
import type { StoreDialect } from '../dialect.js';
import { queueKeyOf } from '../queue-key.js';
import type { DeliveriesTable, SubscriptionsTable } from '../schema.js';
import type { DeliverOutcome, RecoverResult } from '../store.js';
import { liveSubscription } from '../subscriptions.js';
import { chunk } from './chunk.js';
import { gateOrdered } from './ordering.js';
import { insertDeliveryRows } from './publish.js';

/**
 * An ordered subscription's new delivery takes its place behind the document's unfinished ones
 * (gateOrdered): after them, never beside them, though it may be older than they are.
 */
function newDelivery(
  event: { id: string; document_id: string | null },
  sub: SubscriptionsTable,
  now: number,
): DeliveriesTable {
  return {
    id: newId('dlv'),
    event_id: event.id,
    account_id: sub.account_id,
    subscription_id: sub.id,
    status: sub.status === 'active' ? 'pending' : 'held',
    attempt_count: 0,
    round_start: 0,
    manual: 0,
    next_attempt_at: now,
    lease_owner: null,
    created_at: now,
    updated_at: now,
    delivered_at: null,
    listen: sub.kind === 'listen' ? 1 : 0,
    queue_key: queueKeyOf(sub.id),
    order_key: sub.ordering === 'document' ? event.document_id : null,
  };
}

/**
 * Events of the subscription's types created in [since, until), not before the subscription
 * itself, and not tests, that have no delivery to it: at most `limit` of them in one transaction,
 * oldest first, so a long window never holds the writer for long. `continueFrom` is where the next
 * call should start; calling again with the same window is just as safe (what has a delivery now
 * is skipped).
 */
export async function recoverMissed(
  dialect: StoreDialect,
  accountId: string,
  subscriptionId: string,
  since: number,
  until: number,
  now: number,
  limit: number,
): Promise<RecoverResult | undefined> {
  return dialect.writeTransaction(async (trx) => {
    const sub = await liveSubscription(trx, accountId, subscriptionId);
    if (!sub) return undefined;
    const from = Math.max(since, sub.created_at);
    const events = await trx
      .selectFrom('events as e')
      .select(['e.id', 'e.created_at', 'e.document_id'])
      .where('e.account_id', '=', accountId)
      .where('e.type', 'in', splitEventTypes(sub.event_types))
      .where('e.test', '=', 0)
      // An erased event has nothing left to send.
      .where('e.data', '<>', ERASED_DATA)
      .where('e.created_at', '>=', from)
      .where('e.created_at', '<', until)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('deliveries as d')
              .select('d.id')
              .whereRef('d.event_id', '=', 'e.id')
              .where('d.subscription_id', '=', subscriptionId),
          ),
        ),
      )
      .orderBy('e.created_at')
      .orderBy('e.id')
      .limit(limit + 1)
      .execute();
    const taken = events.slice(0, limit);
    const rows = taken.map((e) => newDelivery(e, sub, now));
    await gateOrdered(trx, dialect.name, rows);
    for (const batch of chunk(rows, 400)) await insertDeliveryRows(trx, dialect.name, batch);
    for (const ids of chunk(
      taken.map((e) => e.id),
      500,
    )) {
      await trx.updateTable('events').set({ delivery_count: sql`delivery_count + 1` }).where('id', 'in', ids).execute();
    }
    if (rows.length > 0 && sub.status === 'active') await dialect.notifyDue(trx);
    const next = events[limit];
    return { recovered: rows.length, continueFrom: next === undefined ? undefined : next.created_at };
  });
}

export async function deliverEvent(
  dialect: StoreDialect,
  accountId: string,
  eventId: string,
  subscriptionId: string,
  now: number,
): Promise<DeliverOutcome> {
  return dialect.writeTransaction(async (trx) => {
    const event = await trx
      .selectFrom('events')
      .select(['id', 'type', 'document_id', 'data'])
      .where('id', '=', eventId)
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    if (!event) return { ok: false as const, reason: 'event_not_found' as const };
    if (event.data === ERASED_DATA) return { ok: false as const, reason: 'event_erased' as const };
    const sub = await liveSubscription(trx, accountId, subscriptionId);
    if (!sub) return { ok: false as const, reason: 'subscription_not_found' as const };
    if (!splitEventTypes(sub.event_types).includes(event.type)) {
      return { ok: false as const, reason: 'event_type_not_subscribed' as const };
    }
    const delivery = newDelivery(event, sub, now);
    await gateOrdered(trx, dialect.name, [delivery]);
    await insertDeliveryRows(trx, dialect.name, [delivery]);
    await trx
      .updateTable('events')
      .set({ delivery_count: sql`delivery_count + 1` })
      .where('id', '=', event.id)
      .execute();
    if (delivery.status === 'pending') await dialect.notifyDue(trx);
    return { ok: true as const, delivery };
  });
}
