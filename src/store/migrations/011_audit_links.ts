// Revocable audit links: a document's links are signed over its `audit_link_epoch` (once it is
// past 0), and POST /v1/documents/:id/audit-link/revoke moves it on, so every link given out
// before stops opening the trail. 0: links are signed as before this migration, so those already
// sent in webhooks keep working.
import type { Kysely } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('documents')
    .addColumn('audit_link_epoch', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}
