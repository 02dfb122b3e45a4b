// What the browser portal needs from the schema:
// - api_tokens.kind: `api` for tokens made by the CLI or the first start, `portal` for the
//   short-lived tokens a portal session link carries (only those can be revoked through the API);
// - attempt_stats: attempts per account, minute and process, added to by recordAttempts in the
//   transaction that logs them, so the per-minute chart reads a few rows instead of the attempt
//   log. The process (`node`, the dispatcher's owner id) is part of the key: workers on PostgreSQL
//   each add to their own rows and never wait for one another's row locks. Rows older than 8 days
//   are deleted by the heartbeat, through the index on minute.
import { type Kysely, SqliteAdapter, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;

  await db.schema
    .alterTable('api_tokens')
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('api'))
    .execute();

  await db.schema
    .createTable('attempt_stats')
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('minute', 'bigint', (c) => c.notNull())
    .addColumn('node', 'text', (c) => c.notNull())
    .addColumn('delivered', 'integer', (c) => c.notNull())
    .addColumn('failed', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('attempt_stats_pk', ['account_id', 'minute', 'node'])
    // Written on every attempt batch: on SQLite clustered on its key, one B-tree fewer (as the
    // queue tables in 001).
    .$call((builder) => (sqlite ? builder.modifyEnd(sql`without rowid`) : builder))
    .execute();
  await db.schema.createIndex('attempt_stats_minute').on('attempt_stats').column('minute').execute();
}
