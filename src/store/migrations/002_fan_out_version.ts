// SQLite only: a counter that every change to subscriptions or callbacks moves, kept by triggers,
// so a publish can tell in one read whether the fan-out it cached is still what the tables hold.
// Triggers see every writer (this process, the CLI, any other connection, a hand-written UPDATE),
// which a list of the code paths that write those tables could not promise. On PostgreSQL the
// row-level triggers would make every writer of subscriptions queue on one row (and two
// transactions touching subscriptions in different orders could deadlock on it), and a publish
// there pays a round trip either way, so PostgreSQL keeps reading the tables.
import { type Kysely, SqliteAdapter, sql } from 'kysely';

const WATCHED = ['subscriptions', 'callbacks'] as const;
const CHANGES = ['insert', 'update', 'delete'] as const;

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return;
  await sql`create table fan_out_version (id integer primary key check (id = 1), version integer not null)`.execute(db);
  await sql`insert into fan_out_version (id, version) values (1, 0)`.execute(db);
  for (const table of WATCHED) {
    for (const change of CHANGES) {
      await sql
        .raw(
          `create trigger ${table}_${change}_fan_out after ${change} on ${table} ` +
            'begin update fan_out_version set version = version + 1; end',
        )
        .execute(db);
    }
  }
}
