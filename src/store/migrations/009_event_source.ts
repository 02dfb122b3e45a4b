// Which events the documents lifecycle made (src/store/documents.ts): their payload says
// `"source":"lifecycle"`, which nothing published through POST /v1/events can carry, so a receiver
// can tell a lifecycle event from one the API was given. Null for every other event.
import type { Kysely } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('events').addColumn('source', 'text').execute();
}
