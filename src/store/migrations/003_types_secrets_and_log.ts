// What the operability work needed from the schema, in one migration:
// - a subscription takes a list of event types. `subscription_event_types` holds one row per live
//   subscription and type; its unique index is the seed's 409 (one account, one target_url, one
//   event type) for lists that overlap, enforced by the database on both dialects;
// - every signing secret a rotation retires keeps signing until its own expiry: a JSON list
//   (`retired_secrets`) replaces the single previous-secret slot, for subscriptions and for the
//   account callback, which gains a signing secret of its own;
// - events know their document (the delivery log filters by it) and whether they are tests;
// - attempts keep the exact request sent (URL, headers with Authorization masked) and the
//   response headers;
// - `countersign_nodes`: the processes using the database, so that maintenance can refuse to run
//   under them; `countersign_settings`: the master-key check, so a process holding the wrong key
//   refuses to start instead of failing every send;
// - a partial index over held and failed deliveries, so the queue metrics count them without a
//   table scan (rows enter it only when a delivery is held or fails, off the hot path).
import { type Kysely, SqliteAdapter, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;

  await db.schema
    .alterTable('subscriptions')
    .addColumn('event_types', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema
    .alterTable('subscriptions')
    .addColumn('retired_secrets', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();
  await sql`update subscriptions set event_types = event_type`.execute(db);
  const inGrace = await sql<{ id: string; sealed: string; expires_at: number | string }>`
    select id, previous_secret_sealed as sealed, previous_secret_expires_at as expires_at
    from subscriptions where previous_secret_sealed is not null and previous_secret_expires_at is not null`.execute(db);
  for (const row of inGrace.rows) {
    const retired = JSON.stringify([{ sealed: row.sealed, expires_at: Number(row.expires_at) }]);
    await sql`update subscriptions set retired_secrets = ${retired} where id = ${row.id}`.execute(db);
  }

  await db.schema
    .createTable('subscription_event_types')
    .addColumn('subscription_id', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('target_url', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('subscription_event_types_pk', ['subscription_id', 'event_type'])
    .execute();
  // The seed's 409, for lists of types: no two live subscriptions of an account share a target_url
  // and an event type.
  await db.schema
    .createIndex('subscription_event_types_unique_target')
    .on('subscription_event_types')
    .columns(['account_id', 'target_url', 'event_type'])
    .unique()
    .execute();
  await db.schema
    .createIndex('subscription_event_types_fan_out')
    .on('subscription_event_types')
    .columns(['account_id', 'event_type'])
    .execute();
  await sql`insert into subscription_event_types (subscription_id, event_type, account_id, target_url)
    select id, event_type, account_id, target_url from subscriptions where deleted_at is null`.execute(db);

  await db.schema.dropIndex('subscriptions_unique_target').execute();
  await db.schema.dropIndex('subscriptions_fan_out').execute();
  await db.schema.createIndex('subscriptions_account').on('subscriptions').columns(['account_id', 'id']).execute();
  for (const column of ['event_type', 'previous_secret_sealed', 'previous_secret_expires_at']) {
    await db.schema.alterTable('subscriptions').dropColumn(column).execute();
  }

  await db.schema.alterTable('callbacks').addColumn('signing_secret_sealed', 'text').execute();
  await db.schema
    .alterTable('callbacks')
    .addColumn('retired_secrets', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();

  await db.schema
    .alterTable('events')
    .addColumn('test', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('events').addColumn('document_id', 'text').execute();
  await sql`update events set document_id = ${
    sqlite ? sql`json_extract(data, '$.document_id')` : sql`(data::jsonb ->> 'document_id')`
  }`.execute(db);
  await db.schema.createIndex('events_document').on('events').columns(['account_id', 'document_id']).execute();

  for (const column of ['request_url', 'request_headers', 'response_headers']) {
    await db.schema.alterTable('attempts').addColumn(column, 'text').execute();
  }

  await db.schema
    .createIndex('deliveries_attention')
    .on('deliveries')
    .column('status')
    .where(sql.ref('status'), 'in', sql`('held', 'failed')`)
    .execute();

  await db.schema
    .createTable('countersign_nodes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('hostname', 'text', (c) => c.notNull())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('countersign_settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();

  if (sqlite) {
    // The fan-out cache (migration 002) must see changes to the type rows too, whoever makes them.
    for (const change of ['insert', 'update', 'delete']) {
      await sql
        .raw(
          `create trigger subscription_event_types_${change}_fan_out after ${change} on subscription_event_types ` +
            'begin update fan_out_version set version = version + 1; end',
        )
        .execute(db);
    }
  }
}
