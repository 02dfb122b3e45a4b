// Isolation between endpoints. An endpoint is a subscription, or an account's callback; its key,
// `coalesce(subscription_id, account_id)`, is written the same way in every query that must use
// these indexes.
// - deliveries.queue_key: a hash of the delivery's endpoint key (store/queue-key.ts), filled in here
//   for every delivery already stored, one UPDATE per endpoint.
// - deliveries_due is keyed by queue key, then due time. A claim walks the endpoints that have work
//   (one index seek each) and takes a fair share from each, so one endpoint's backlog never sits in
//   front of another's due deliveries, as it did in a queue ordered by due time alone.
// - endpoint_circuits: one row per endpoint that has failed at least once: its circuit breaker's
//   state, shared by every process.
// - status `postponed`: an endpoint's deliveries while its circuit is open, out of the queue
//   without using their attempts; deliveries_postponed finds them again, oldest first.
// - SQLite: a circuit's state moves the fan-out version, so a publish that cached the targets sees
//   an open circuit and postpones its new deliveries at once.
import { type Kysely, SqliteAdapter, sql } from 'kysely';
import { queueKeyOf } from '../queue-key.js';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('endpoint_circuits')
    .addColumn('endpoint', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('openings', 'integer', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('opened_at', 'bigint')
    .addColumn('retry_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  // The metrics count circuits by state; the portal lists an account's open ones.
  await db.schema
    .createIndex('endpoint_circuits_tripped')
    .on('endpoint_circuits')
    .columns(['account_id', 'state'])
    .where(sql<boolean>`state <> 'closed'`)
    .execute();

  await db.schema
    .alterTable('deliveries')
    .addColumn('queue_key', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  const subscriptions = await db.selectFrom('subscriptions').select('id').execute();
  for (const { id } of subscriptions) {
    await db
      .updateTable('deliveries')
      .set({ queue_key: queueKeyOf(id) })
      .where('subscription_id', '=', id)
      .execute();
  }
  const accounts = await db.selectFrom('accounts').select('id').execute();
  for (const { id } of accounts) {
    await db
      .updateTable('deliveries')
      .set({ queue_key: queueKeyOf(id) })
      .where('subscription_id', 'is', null)
      .where('account_id', '=', id)
      .execute();
  }
  await db.schema.dropIndex('deliveries_due').execute();
  await sql`create index deliveries_due on deliveries (queue_key, next_attempt_at) where status in ('pending', 'sending') and listen = 0`.execute(
    db,
  );
  await sql`create index deliveries_postponed on deliveries (queue_key, next_attempt_at) where status = 'postponed'`.execute(
    db,
  );

  if (db.getExecutor().adapter instanceof SqliteAdapter) {
    for (const change of ['insert', 'delete'] as const) {
      await sql
        .raw(
          `create trigger endpoint_circuits_${change}_fan_out after ${change} on endpoint_circuits ` +
            'begin update fan_out_version set version = version + 1; end',
        )
        .execute(db);
    }
    // Counting faults does not move it: only the state and the probe time, which fan-out reads.
    await sql
      .raw(
        'create trigger endpoint_circuits_update_fan_out after update of state, retry_at on endpoint_circuits ' +
          'when old.state is not new.state or old.retry_at is not new.retry_at ' +
          'begin update fan_out_version set version = version + 1; end',
      )
      .execute(db);
  }
}
