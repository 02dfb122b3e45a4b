// Documents, their signers and their audit trail. Every step (create, send, sign, decline) reads
// the document under a lock (PostgreSQL: FOR UPDATE; SQLite: the one writer), checks that the
// step is allowed, changes the document and its signers, appends its audit entries to the chain
// and publishes its events (publishWithin), all in one transaction: there is never an event
// without its state change, nor a state change without its event and its entry. A refused step
// throws before anything is written, so it leaves the document, its events and its trail as they
// were.
import { type Kysely, sql } from 'kysely';
import {
  type AuditAction,
  type AuditEntry,
  chainEntry,
  GENESIS_HASH,
  type HashVersion,
} from '../domain/audit-chain.js';
import { newId } from '../domain/ids.js';
import { CountersignError, notFound } from '../errors.js';
import type { StoreDialect } from './dialect.js';
import { publishWithin } from './queue/publish.js';
import type { AuditEntriesTable, Database, DocumentSignersTable, DocumentStatus, DocumentsTable } from './schema.js';
import type {
  CreateDocumentInput,
  DocumentRecord,
  DocumentStep,
  EventRecord,
  Page,
  PublishRequest,
  SignerRecord,
  StepContext,
} from './store.js';

function signerRecord(row: DocumentSignersTable): SignerRecord {
  return {
    id: row.id,
    position: row.position,
    email: row.email,
    name: row.name,
    status: row.status,
    actedAt: row.acted_at,
    declineReason: row.decline_reason,
  };
}

function documentRecord(row: DocumentsTable, signers: DocumentSignersTable[]): DocumentRecord {
  return {
    id: row.id,
    accountId: row.account_id,
    title: row.title,
    externalId: row.external_id,
    status: row.status,
    auditSeq: row.audit_seq,
    auditHash: row.audit_hash,
    auditLinkEpoch: Number(row.audit_link_epoch),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    signers: signers.sort((a, b) => a.position - b.position).map(signerRecord),
  };
}

async function signersOf(db: Kysely<Database>, documentIds: string[]): Promise<Map<string, DocumentSignersTable[]>> {
  const byDocument = new Map<string, DocumentSignersTable[]>();
  if (documentIds.length === 0) return byDocument;
  const rows = await db.selectFrom('document_signers').selectAll().where('document_id', 'in', documentIds).execute();
  for (const row of rows) {
    const list = byDocument.get(row.document_id) ?? [];
    list.push(row);
    byDocument.set(row.document_id, list);
  }
  return byDocument;
}

export async function getDocument(
  db: Kysely<Database>,
  accountId: string | undefined,
  id: string,
): Promise<DocumentRecord | undefined> {
  const row = await db
    .selectFrom('documents')
    .selectAll()
    .where('id', '=', id)
    .$if(accountId !== undefined, (q) => q.where('account_id', '=', accountId as string))
    .executeTakeFirst();
  if (!row) return undefined;
  return documentRecord(row, (await signersOf(db, [row.id])).get(row.id) ?? []);
}

export async function listDocuments(
  db: Kysely<Database>,
  accountId: string,
  filter: { limit: number; cursor?: string; status?: DocumentStatus },
): Promise<Page<DocumentRecord>> {
  const rows = await db
    .selectFrom('documents')
    .selectAll()
    .where('account_id', '=', accountId)
    .$if(filter.status !== undefined, (q) => q.where('status', '=', filter.status as DocumentStatus))
    .$if(filter.cursor !== undefined, (q) => q.where('id', '<', filter.cursor as string))
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  const page = rows.slice(0, filter.limit);
  const signers = await signersOf(
    db,
    page.map((r) => r.id),
  );
  return {
    items: page.map((r) => documentRecord(r, signers.get(r.id) ?? [])),
    nextCursor: rows.length > filter.limit ? (page[page.length - 1]?.id ?? null) : null,
  };
}

/** Entries of the document's trail in sequence order. */
export async function auditEntries(db: Kysely<Database>, documentId: string): Promise<AuditEntry[]> {
  const rows = await db
    .selectFrom('audit_entries')
    .selectAll()
    .where('document_id', '=', documentId)
    .orderBy('seq')
    .execute();
  return rows.map((r) => ({
    v: r.hash_version === 1 ? 1 : (r.hash_version as HashVersion),
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action as AuditAction,
    ip: r.ip,
    user_agent: r.user_agent,
    detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, string>),
    salt: r.salt,
    personal: r.personal,
    prev_hash: r.prev_hash,
    hash: r.hash,
  }));
}

/** Appends entries to the chain whose head is the document's, and moves the head. */
async function appendEntries(
  trx: Kysely<Database>,
  doc: DocumentsTable,
  steps: { actor: string; action: AuditAction; detail: Record<string, string> }[],
  context: Omit<StepContext, 'auditUrl'>,
): Promise<{ seq: number; hash: string }> {
  let seq = doc.audit_seq;
  let hash = doc.audit_hash;
  const rows: AuditEntriesTable[] = [];
  for (const step of steps) {
    seq += 1;
    const entry = chainEntry(context.chainKey, doc.id, hash, {
      seq,
      at: context.now,
      actor: step.actor,
      action: step.action,
      ip: context.ip,
      user_agent: context.userAgent,
      detail: step.detail,
    });
    hash = entry.hash;
    rows.push({
      document_id: doc.id,
      seq,
      at: entry.at,
      actor: entry.actor,
      action: entry.action,
      ip: entry.ip,
      user_agent: entry.user_agent,
      detail: JSON.stringify(entry.detail),
      salt: entry.salt,
      personal: entry.personal,
      prev_hash: entry.prev_hash,
      hash: entry.hash,
      hash_version: entry.v,
    });
  }
  await trx.insertInto('audit_entries').values(rows).execute();
  return { seq, hash };
}

export function createDocument(
  d: StoreDialect,
  input: CreateDocumentInput,
  context: Omit<StepContext, 'auditUrl'>,
): Promise<DocumentRecord> {
  return d.writeTransaction(async (trx) => {
    const now = context.now;
    const doc: DocumentsTable = {
      id: newId('doc'),
      account_id: input.accountId,
      title: input.title,
      external_id: input.externalId,
      status: 'draft',
      audit_seq: 0,
      audit_hash: GENESIS_HASH,
      audit_link_epoch: 0,
      created_at: now,
      updated_at: now,
    };
    const signers: DocumentSignersTable[] = input.signers.map((s, position) => ({
      id: newId('sgn'),
      document_id: doc.id,
      position,
      email: s.email,
      name: s.name,
      status: 'pending',
      acted_at: null,
      decline_reason: null,
    }));
    await trx.insertInto('documents').values(doc).execute();
    await trx.insertInto('document_signers').values(signers).execute();
    const head = await appendEntries(
      trx,
      doc,
      [{ actor: context.actor, action: 'created', detail: { title: doc.title, signers: String(signers.length) } }],
      context,
    );
    await trx
      .updateTable('documents')
      .set({ audit_seq: head.seq, audit_hash: head.hash })
      .where('id', '=', doc.id)
      .execute();
    return documentRecord({ ...doc, audit_seq: head.seq, audit_hash: head.hash }, signers);
  });
}

/** A step the document's state does not allow: 409, naming the state, and nothing written. */
function refused(message: string): CountersignError {
  return new CountersignError('conflict', message);
}

/**
 * Applies one lifecycle step. Returns the document as it is now and the events made,
 * in the order made. Throws not_found for an unknown document or signer, conflict for a step the
 * state does not allow.
 */
export function applyDocumentStep(
  d: StoreDialect,
  accountId: string,
  documentId: string,
  step: DocumentStep,
  context: StepContext,
): Promise<{ document: DocumentRecord; events: EventRecord[]; queued: number }> {
  return d.writeTransaction(async (trx) => {
    const doc = await trx
      .selectFrom('documents')
      .selectAll()
      .where('id', '=', documentId)
      .where('account_id', '=', accountId)
      .$if(d.name === 'postgres', (q) => q.forUpdate())
      .executeTakeFirst();
    if (!doc) throw notFound('document');
    const signers = (await signersOf(trx, [doc.id])).get(doc.id) ?? [];
    signers.sort((a, b) => a.position - b.position);
    const now = context.now;
    const entries: { actor: string; action: AuditAction; detail: Record<string, string> }[] = [];
    const events: { type: string; signer: DocumentSignersTable; reason?: string }[] = [];
    let status: DocumentStatus = doc.status;

    if (step.kind === 'send') {
      if (doc.status !== 'draft') throw refused(`the document is ${doc.status}: only a draft can be sent`);
      const erased = signers.find((s) => s.email === null);
      if (erased) throw refused(`the document is draft, and signer ${erased.id} was erased: it cannot be sent`);
      status = 'sent';
      entries.push({ actor: context.actor, action: 'sent', detail: { signers: String(signers.length) } });
      for (const signer of signers) events.push({ type: 'document.sent', signer });
    } else {
      const signer = signers.find((s) => s.id === step.signerId);
      if (!signer) throw notFound('signer');
      const verb = step.kind === 'sign' ? 'sign' : 'decline';
      if (doc.status !== 'sent') {
        throw refused(`the document is ${doc.status}: a signer can ${verb} only while it is sent`);
      }
      if (signer.status !== 'pending') {
        throw refused(`the document is sent, and signer ${signer.id} has ${signer.status} already`);
      }
      if (signer.email === null) {
        throw refused(`the document is sent, and signer ${signer.id} was erased: there is no one to ${verb}`);
      }
      const email = signer.email;
      const changes =
        step.kind === 'sign'
          ? { status: 'signed' as const, acted_at: now }
          : { status: 'declined' as const, acted_at: now, decline_reason: step.reason };
      await trx.updateTable('document_signers').set(changes).where('id', '=', signer.id).execute();
      Object.assign(signer, changes);
      if (step.kind === 'sign') {
        entries.push({ actor: email, action: 'signed', detail: { signer_id: signer.id } });
        events.push({ type: 'document.signed', signer });
        if (signers.every((s) => s.status === 'signed')) {
          status = 'completed';
          entries.push({ actor: email, action: 'completed', detail: { signer_id: signer.id } });
          events.push({ type: 'document.completed', signer });
        }
      } else {
        status = 'declined';
        entries.push({
          actor: email,
          action: 'declined',
          detail: { signer_id: signer.id, reason: step.reason },
        });
        events.push({ type: 'document.declined', signer, reason: step.reason });
      }
    }

    const head = await appendEntries(trx, doc, entries, context);
    await trx
      .updateTable('documents')
      .set({ status, audit_seq: head.seq, audit_hash: head.hash, updated_at: now })
      .where('id', '=', doc.id)
      .execute();
    const auditUrl = context.auditUrl({ id: doc.id, auditLinkEpoch: Number(doc.audit_link_epoch) });
    const requests: PublishRequest[] = events.map((e) => ({
      accountId,
      type: e.type,
      dataJson: JSON.stringify({
        document_id: doc.id,
        signer_email: e.signer.email as string,
        audit_url: auditUrl,
        title: doc.title,
        external_id: doc.external_id,
        signer_id: e.signer.id,
        ...(e.signer.name === null ? {} : { signer_name: e.signer.name }),
        ...(e.reason === undefined ? {} : { reason: e.reason }),
      }),
      documentId: doc.id,
      occurredAt: now,
      source: 'lifecycle',
    }));
    const published = await publishWithin(trx, d, requests, now);
    const made = published.results.flatMap((r) => (r.ok ? [r.event] : []));
    return {
      document: documentRecord(
        { ...doc, status, audit_seq: head.seq, audit_hash: head.hash, updated_at: now },
        signers,
      ),
      events: made,
      queued: published.queued,
    };
  });
}

/**
 * Erasure (POST /v1/erasure) in the documents: a signer's address, or every signer of one document.
 * The signers' email and name become null; the audit entries they acted in (or, for a document,
 * all of its entries) lose their personal fields and salt and keep their commitment, so the chain
 * still verifies. A document erased by id also loses its title. Returns the documents changed.
 */
export async function eraseFromDocuments(
  trx: Kysely<Database>,
  accountId: string,
  subject: { signerEmail: string } | { documentId: string },
): Promise<number> {
  const erasedFields = { actor: null, ip: null, user_agent: null, detail: null, salt: null };
  if ('documentId' in subject) {
    const doc = await trx
      .selectFrom('documents')
      .select('id')
      .where('id', '=', subject.documentId)
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    if (!doc) return 0;
    // The platform's own reference goes too: it names the document as surely as its id does.
    await trx.updateTable('documents').set({ title: '(erased)', external_id: null }).where('id', '=', doc.id).execute();
    await trx
      .updateTable('document_signers')
      .set({ email: null, name: null, decline_reason: null })
      .where('document_id', '=', doc.id)
      .execute();
    await trx.updateTable('audit_entries').set(erasedFields).where('document_id', '=', doc.id).execute();
    return 1;
  }
  const email = subject.signerEmail.toLowerCase();
  const signers = await trx
    .selectFrom('document_signers as s')
    .innerJoin('documents as d', 'd.id', 's.document_id')
    .select(['s.id', 's.document_id'])
    .where('d.account_id', '=', accountId)
    .where(sql<boolean>`lower(s.email) = ${email}`)
    .execute();
  if (signers.length === 0) return 0;
  const documentIds = [...new Set(signers.map((s) => s.document_id))];
  // A decline reason is free text the signer wrote: often personal, so it goes with them.
  await trx
    .updateTable('document_signers')
    .set({ email: null, name: null, decline_reason: null })
    .where(
      'id',
      'in',
      signers.map((s) => s.id),
    )
    .execute();
  await trx
    .updateTable('audit_entries')
    .set(erasedFields)
    .where('document_id', 'in', documentIds)
    .where(sql<boolean>`lower(actor) = ${email}`)
    .execute();
  return documentIds.length;
}

/** Every audit link of the document given out so far stops opening its trail. */
export async function revokeAuditLinks(
  d: StoreDialect,
  accountId: string,
  id: string,
  now: number,
): Promise<DocumentRecord | undefined> {
  const changed = await d.writeTransaction((trx) =>
    trx
      .updateTable('documents')
      .set({ audit_link_epoch: sql`audit_link_epoch + 1`, updated_at: now })
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .executeTakeFirst(),
  );
  if (Number(changed.numUpdatedRows) === 0) return undefined;
  return getDocument(d.db, accountId, id);
}
