// Erasure: remove one signer's address, or one document, from an account's stored history.
//
// 1. The matching events (data holding the address as a string value, or events.document_id equal
//    to the id) get data {"erased":true} and no document_id; id, type and times stay. Their
//    deliveries not yet made are cancelled: pending, held and waiting ones are never sent; a
//    sending one is already in a dispatcher's hands (possibly on the wire), so cancelling it only
//    stops its retries, and its answer is still logged when it comes (recordAttempts moves only
//    rows still `sending` under its lease, so the delivery stays cancelled). A cancelled delivery
//    of an ordered subscription lets the next one of its document go (promoteWaiting), and every
//    delivery of an erased event loses its order_key, which is the document id.
// 2. Every attempt of the account whose answer (excerpt, headers) or error holds the subject has
//    that column set to null, whichever event it was for.
// 3. Answers of the deliveries that were being sent are waited for (a bounded time) and scrubbed.
// 4. SQLite: the file is rebuilt (VACUUM) and the WAL truncated, off the event loop and at most
//    once per interval (file-rebuilds.ts). Updating a row in place is not
//    enough even with `secure_delete`: SQLite leaves copies of rows in the unused part of pages
//    it split or rebalanced earlier, and old page images sit in the WAL until it is truncated.
//    PostgreSQL: old row versions stay in the table files until VACUUM reuses their space; no
//    query and no dump sees them.
//
// Events and attempts are read in pages of `batchSize` rows by id and changed in one short write
// transaction per page, so a large account never holds the writer for long. What is done stays
// done; calling again is safe and completes whatever a first call could not (`complete: false`).

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Kysely, sql } from 'kysely';
import { ERASED_DATA, type ErasureSubject, jsonHolds, likePattern, subjectMatcher } from '../domain/erasure.js';
import type { StoreDialect } from './dialect.js';
import { eraseFromDocuments } from './documents.js';
import { type FileRebuilds, REWRITE_OWED } from './file-rebuilds.js';
import { chunk } from './queue/chunk.js';
import { orderKeysOf, promoteWaiting } from './queue/ordering.js';
import { retryConflicts } from './retry-conflicts.js';
import { type Database, UNFINISHED_STATUSES } from './schema.js';
import type { ErasureOutcome, ErasureSettings } from './store.js';

export const DEFAULT_ERASURE_SETTINGS: ErasureSettings = { inFlightWaitMs: 20_000, batchSize: 500 };

/** A delivery cancelled while it was being sent, and the number of the attempt in flight. */
interface InFlight {
  deliveryId: string;
  attempt: number;
}

export async function eraseSubject(
  d: StoreDialect,
  accountId: string,
  subject: ErasureSubject,
  now: number,
  settings: ErasureSettings,
  rebuilds: FileRebuilds,
): Promise<{ outcome: ErasureOutcome; erasedEventIds: string[]; released: number }> {
  const outcome: ErasureOutcome = {
    eventsErased: 0,
    deliveriesCancelled: 0,
    attemptsScrubbed: 0,
    documentsScrubbed: 0,
    complete: true,
    warnings: [],
  };
  /** For the caller's cache of recent events. */
  const erasedEventIds: string[] = [];
  /** Waiting deliveries now pending: the caller wakes its dispatcher. */
  let released = 0;
  const inFlight: InFlight[] = [];
  const matcher = subjectMatcher(subject);

  for await (const ids of matchingEvents(d.db, accountId, subject, matcher, settings.batchSize)) {
    const erased = await retryConflicts(() => writeScrubbing(d, (trx) => eraseEvents(trx, d, accountId, ids, now)));
    outcome.eventsErased += erased.events;
    outcome.deliveriesCancelled += erased.cancelled;
    released += erased.released;
    erasedEventIds.push(...ids);
    inFlight.push(...erased.inFlight);
  }

  outcome.attemptsScrubbed += await scrubAccountAttempts(d, accountId, subject, matcher, settings.batchSize);
  // The documents lifecycle's own copies: signers and the personal fields of audit entries.
  outcome.documentsScrubbed = await retryConflicts(() =>
    writeScrubbing(d, (trx) => eraseFromDocuments(trx, accountId, subject)),
  );

  if (inFlight.length > 0) {
    const unanswered = await waitForAnswers(d.db, inFlight, settings.inFlightWaitMs);
    outcome.attemptsScrubbed += await scrubAttemptsOf(
      d,
      inFlight.map((f) => f.deliveryId),
      subject,
      matcher,
    );
    if (unanswered > 0) {
      outcome.complete = false;
      outcome.warnings.push(
        `${unanswered} cancelled deliver${unanswered === 1 ? 'y was' : 'ies were'} being sent and ${unanswered === 1 ? 'has' : 'have'} not logged ${unanswered === 1 ? 'its' : 'their'} answer yet; erase again later to scrub it`,
      );
    }
  }

  // SQLite: only when an erasure changed something since the file was last rebuilt (this one, or
  // an earlier one whose rebuild could not finish): an erasure that matched nothing costs none.
  const rebuild = await rebuilds.afterErasure();
  if (rebuild.done && rebuild.problem) {
    outcome.complete = false;
    outcome.warnings.push(rebuild.problem);
  } else if (!rebuild.done) {
    outcome.complete = false;
    outcome.warnings.push(
      `old copies of what was erased remain in the SQLite file until it is rebuilt at ${new Date(rebuild.at).toISOString()} (the file is rebuilt at most once per COUNTERSIGN_ERASURE_REBUILD_INTERVAL)`,
    );
  }
  return { outcome, erasedEventIds, released };
}

/**
 * SQLite: the erasure's writes zero what they free (`secure_delete`), so the rows changed leave no
 * copy in the pages they were on; the file rebuild at the end covers what earlier writes left.
 */
function writeScrubbing<T>(d: StoreDialect, work: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (d.name !== 'sqlite') return d.writeTransaction(work);
  return d.writeTransaction(async (trx) => {
    await sql`pragma secure_delete = on`.execute(trx);
    try {
      const before = await totalChanges(trx);
      const result = await work(trx);
      // In the same transaction as the change: a crash before the rebuild still leaves it owed.
      if ((await totalChanges(trx)) !== before) {
        await trx
          .insertInto('countersign_settings')
          .values({ key: REWRITE_OWED, value: randomUUID() })
          .onConflict((oc) => oc.column('key').doUpdateSet({ value: (eb) => eb.ref('excluded.value') }))
          .execute();
      }
      return result;
    } finally {
      await sql`pragma secure_delete = off`.execute(trx);
    }
  });
}

/** Rows this SQLite connection has changed since it opened. */
async function totalChanges(trx: Kysely<Database>): Promise<number> {
  const result = await sql<{ n: number }>`select total_changes() as n`.execute(trx);
  return Number(result.rows[0]?.n ?? 0);
}

/** Ids of the account's events about the subject, a page at a time. */
async function* matchingEvents(
  db: Kysely<Database>,
  accountId: string,
  subject: ErasureSubject,
  matcher: RegExp,
  pageSize: number,
): AsyncGenerator<string[]> {
  let after = '';
  for (;;) {
    if ('documentId' in subject) {
      const rows = await db
        .selectFrom('events')
        .select('id')
        .where('account_id', '=', accountId)
        .where('document_id', '=', subject.documentId)
        .where('id', '>', after)
        .orderBy('id')
        .limit(pageSize)
        .execute();
      if (rows.length > 0) yield rows.map((r) => r.id);
      if (rows.length < pageSize) return;
      after = (rows[rows.length - 1] as { id: string }).id;
      continue;
    }
    // A page of ids through events_account, then the LIKE prefilter within it: each statement
    // reads `pageSize` events at most, however few of them match.
    const page = await db
      .selectFrom('events')
      .select('id')
      .where('account_id', '=', accountId)
      .where('id', '>', after)
      .orderBy('id')
      .limit(pageSize)
      .execute();
    const last = page[page.length - 1]?.id;
    if (last === undefined) return;
    const candidates = await db
      .selectFrom('events')
      .select(['id', 'data'])
      .where('account_id', '=', accountId)
      .where('id', '>', after)
      .where('id', '<=', last)
      .where(sql<boolean>`lower(data) like ${likePattern(subject)} escape '\\'`)
      .execute();
    const ids = candidates.filter((c) => jsonHolds(c.data, matcher)).map((c) => c.id);
    if (ids.length > 0) yield ids;
    if (page.length < pageSize) return;
    after = last;
  }
}

async function eraseEvents(
  trx: Kysely<Database>,
  d: StoreDialect,
  accountId: string,
  eventIds: string[],
  now: number,
): Promise<{ events: number; cancelled: number; released: number; inFlight: InFlight[] }> {
  let events = 0;
  let cancelled = 0;
  let released = 0;
  const inFlight: InFlight[] = [];
  for (const ids of chunk(eventIds, 500)) {
    const result = await trx
      .updateTable('events')
      .set({ data: ERASED_DATA, document_id: null })
      .where('account_id', '=', accountId)
      .where('id', 'in', ids)
      .executeTakeFirst();
    events += Number(result.numUpdatedRows);
    const open = await trx
      .selectFrom('deliveries')
      .select(['id', 'status', 'attempt_count'])
      .where('event_id', 'in', ids)
      .where('status', 'in', UNFINISHED_STATUSES)
      .$if(d.name === 'postgres', (q) => q.forUpdate())
      .execute();
    const openIds = open.map((o) => o.id);
    // Read before the order keys are cleared below.
    const keys = await orderKeysOf(trx, openIds);
    for (const part of chunk(openIds, 500)) {
      const done = await trx
        .updateTable('deliveries')
        .set({ status: 'cancelled', lease_owner: null, updated_at: now })
        .where('id', 'in', part)
        .where('status', 'in', UNFINISHED_STATUSES)
        .executeTakeFirst();
      cancelled += Number(done.numUpdatedRows);
    }
    for (const o of open) if (o.status === 'sending') inFlight.push({ deliveryId: o.id, attempt: o.attempt_count });
    await trx
      .updateTable('deliveries')
      .set({ order_key: null })
      .where('event_id', 'in', ids)
      .where('order_key', 'is not', null)
      .execute();
    const moved = await promoteWaiting(trx, d.name, keys, now);
    if (moved > 0) await d.notifyDue(trx);
    released += moved;
  }
  return { events, cancelled, released, inFlight };
}

type AttemptText = 'response_excerpt' | 'response_headers' | 'error';
const ATTEMPT_TEXT: AttemptText[] = ['response_excerpt', 'response_headers', 'error'];

interface AttemptHit {
  delivery_id: string;
  number: number;
  columns: AttemptText[];
}

/** The columns of an attempt row that hold the subject. */
function hitOf(
  row: { delivery_id: string; number: number } & Record<AttemptText, string | null>,
  matcher: RegExp,
): AttemptHit | undefined {
  const columns = ATTEMPT_TEXT.filter((c) => {
    const text = row[c];
    return text !== null && matcher.test(text);
  });
  return columns.length === 0 ? undefined : { delivery_id: row.delivery_id, number: row.number, columns };
}

const attemptLike = (subject: ErasureSubject) => {
  const pattern = likePattern(subject);
  return sql<boolean>`(lower(a.response_excerpt) like ${pattern} escape '\\' or lower(a.response_headers) like ${pattern} escape '\\' or lower(a.error) like ${pattern} escape '\\')`;
};

async function nullColumns(d: StoreDialect, hits: AttemptHit[]): Promise<number> {
  if (hits.length === 0) return 0;
  return retryConflicts(() =>
    writeScrubbing(d, async (trx) => {
      let changed = 0;
      for (const hit of hits) {
        const set: Partial<Record<AttemptText, null>> = {};
        for (const c of hit.columns) set[c] = null;
        const result = await trx
          .updateTable('attempts')
          .set(set)
          .where('delivery_id', '=', hit.delivery_id)
          .where('number', '=', hit.number)
          .executeTakeFirst();
        changed += Number(result.numUpdatedRows);
      }
      return changed;
    }),
  );
}

/** Every attempt of the account, a page of deliveries (by id, through deliveries_account) at a time. */
async function scrubAccountAttempts(
  d: StoreDialect,
  accountId: string,
  subject: ErasureSubject,
  matcher: RegExp,
  pageSize: number,
): Promise<number> {
  let scrubbed = 0;
  let after = '';
  for (;;) {
    const page = await d.db
      .selectFrom('deliveries')
      .select('id')
      .where('account_id', '=', accountId)
      .where('id', '>', after)
      .orderBy('id')
      .limit(pageSize)
      .execute();
    const last = page[page.length - 1]?.id;
    if (last === undefined) return scrubbed;
    const rows = await d.db
      .selectFrom('attempts as a')
      .innerJoin('deliveries as dl', 'dl.id', 'a.delivery_id')
      .select(['a.delivery_id', 'a.number', 'a.response_excerpt', 'a.response_headers', 'a.error'])
      .where('dl.account_id', '=', accountId)
      .where('dl.id', '>', after)
      .where('dl.id', '<=', last)
      .where(attemptLike(subject))
      .execute();
    scrubbed += await nullColumns(
      d,
      rows.flatMap((r) => hitOf(r, matcher) ?? []),
    );
    if (page.length < pageSize) return scrubbed;
    after = last;
  }
}

async function scrubAttemptsOf(
  d: StoreDialect,
  deliveryIds: string[],
  subject: ErasureSubject,
  matcher: RegExp,
): Promise<number> {
  let scrubbed = 0;
  for (const ids of chunk(deliveryIds, 500)) {
    const rows = await d.db
      .selectFrom('attempts as a')
      .select(['a.delivery_id', 'a.number', 'a.response_excerpt', 'a.response_headers', 'a.error'])
      .where('a.delivery_id', 'in', ids)
      .where(attemptLike(subject))
      .execute();
    scrubbed += await nullColumns(
      d,
      rows.flatMap((r) => hitOf(r, matcher) ?? []),
    );
  }
  return scrubbed;
}

/** Waits until each in-flight attempt is logged, or the time is up; returns how many were not. */
async function waitForAnswers(db: Kysely<Database>, inFlight: InFlight[], waitMs: number): Promise<number> {
  const deadline = Date.now() + waitMs;
  let waiting = inFlight;
  for (;;) {
    const logged = new Set<string>();
    for (const part of chunk(waiting, 200)) {
      const rows = await db
        .selectFrom('attempts')
        .select(['delivery_id', 'number'])
        .where(
          'delivery_id',
          'in',
          part.map((f) => f.deliveryId),
        )
        .execute();
      for (const r of rows) logged.add(`${r.delivery_id} ${r.number}`);
    }
    waiting = waiting.filter((f) => !logged.has(`${f.deliveryId} ${f.attempt}`));
    if (waiting.length === 0 || Date.now() >= deadline) return waiting.length;
    await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
  }
}
