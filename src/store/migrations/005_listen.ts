// Listen sessions (`countersign listen`): a delivery target that is a stream to the CLI instead of
// a URL the server POSTs to. A session is a subscriptions row of kind `listen`, so fan-out,
// signing, retries and the delivery log treat it as any subscription; its deliveries carry
// `listen = 1`, and only the process holding the session's stream claims them:
// - subscriptions.kind: `webhook` (the seed's subscriptions) or `listen`;
// - subscriptions.listen_seen_at: when a stream of the session was last connected, for ending
//   sessions whose CLI never came back;
// - deliveries.listen: 1 for a listen session's deliveries. The queue index `deliveries_due` is
//   rebuilt to leave them out, so dispatchers never see them; `deliveries_listen_due` finds one
//   session's due deliveries.
import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('subscriptions')
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('webhook'))
    .execute();
  await db.schema.alterTable('subscriptions').addColumn('listen_seen_at', 'bigint').execute();
  await db.schema
    .alterTable('deliveries')
    .addColumn('listen', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();

  await db.schema.dropIndex('deliveries_due').execute();
  await db.schema
    .createIndex('deliveries_due')
    .on('deliveries')
    .column('next_attempt_at')
    .where(sql<boolean>`status in ('pending', 'sending') and listen = 0`)
    .execute();
  await db.schema
    .createIndex('deliveries_listen_due')
    .on('deliveries')
    .columns(['subscription_id', 'next_attempt_at'])
    .where(sql<boolean>`status in ('pending', 'sending') and listen = 1`)
    .execute();
}
