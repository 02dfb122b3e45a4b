// Documents and signers (issue 18): countersign's own small signing lifecycle, beside POST
// /v1/events. Each step changes the document and its signers, appends an audit entry and makes
// its events in one transaction.
// - documents: the document, its status (draft, sent, completed, declined) and the head of its
//   audit chain (audit_seq, audit_hash), so that entries cut off the end are caught;
// - document_signers: one row per signer, in the order given (email and name null once erased);
// - audit_entries: the chain, keyed by (document_id, seq). The personal fields (actor, ip,
//   user_agent, detail) enter the chain through `personal`, a commitment under `salt`; an erasure
//   nulls them and the salt, and the chain still verifies.
import type { Kysely } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's row types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('documents')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('external_id', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('audit_seq', 'integer', (c) => c.notNull())
    .addColumn('audit_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('documents_account').on('documents').columns(['account_id', 'id']).execute();
  await db.schema
    .createIndex('documents_account_status')
    .on('documents')
    .columns(['account_id', 'status', 'id'])
    .execute();

  await db.schema
    .createTable('document_signers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('document_id', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('email', 'text')
    .addColumn('name', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('acted_at', 'bigint')
    .addColumn('decline_reason', 'text')
    .execute();
  await db.schema
    .createIndex('document_signers_document')
    .on('document_signers')
    .columns(['document_id', 'position'])
    .unique()
    .execute();

  await db.schema
    .createTable('audit_entries')
    .addColumn('document_id', 'text', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('actor', 'text')
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('detail', 'text')
    .addColumn('salt', 'text')
    .addColumn('personal', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('audit_entries_pk', ['document_id', 'seq'])
    .execute();
}
