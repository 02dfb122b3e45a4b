// Delivery controls (issue 17):
// - subscriptions.rate_limit_per_second: at most this many sends a second, counted across every
//   process sharing the database (null: no limit);
// - throttle_slots: the next free send slot of each throttled subscription, epoch microseconds;
//   claims reserve slots by moving it forward (compare-and-set). A table of its own, so that
//   reserving slots neither moves SQLite's fan-out version (subscriptions' triggers) nor queues
//   behind writers of the subscription's row;
// - subscriptions.ordering: `none` or `document` (deliveries of one document one at a time, in
//   publish order);
// - deliveries.order_key: data.document_id for an ordered subscription's delivery, else null. A
//   keyed delivery with an earlier unfinished one of the same key waits (status `waiting`, never
//   claimed) until that one is delivered or finally fails; `deliveries_ordered` finds the next.
// - events_created: retention purges by age.
import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('subscriptions').addColumn('rate_limit_per_second', 'integer').execute();
  await db.schema
    .createTable('throttle_slots')
    .addColumn('subscription_id', 'text', (c) => c.primaryKey())
    .addColumn('next_us', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .alterTable('subscriptions')
    .addColumn('ordering', 'text', (c) => c.notNull().defaultTo('none'))
    .execute();
  await db.schema.alterTable('deliveries').addColumn('order_key', 'text').execute();
  await db.schema
    .createIndex('deliveries_ordered')
    .on('deliveries')
    .columns(['subscription_id', 'order_key', 'id'])
    .where(sql<boolean>`order_key is not null`)
    .execute();
  // The queue metrics count what waits; this stays as small as the number waiting.
  await db.schema
    .createIndex('deliveries_waiting')
    .on('deliveries')
    .column('subscription_id')
    .where(sql<boolean>`status = 'waiting'`)
    .execute();
  await db.schema.createIndex('events_created').on('events').column('created_at').execute();
}
