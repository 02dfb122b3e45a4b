// The audit chain's hash version per entry (src/domain/audit-chain.ts): 1 for the entries made
// before, plain SHA-256, which verify as they always did; 2 for every entry made from now on, an
// HMAC under the chain key (countersign_settings `audit_chain_key`, sealed by the master key).
import type { Kysely } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('audit_entries')
    .addColumn('hash_version', 'integer', (c) => c.notNull().defaultTo(1))
    .execute();
}
