// Retention: delete events older than a cutoff with their finished deliveries (delivered, failed,
// cancelled) and those deliveries' attempts. An event with any delivery not yet made (pending,
// sending, held, waiting) stays, with all its deliveries. One call looks at `limit` old events at
// most, oldest first, in one write transaction, so publishing never waits long for it; `next` is
// where the following call starts, past the events that had to stay.
//
// Safe beside everything else and beside other purges. On PostgreSQL the old events are locked
// (SKIP LOCKED: two purges take different ones), a delivery is deleted only in a finished status
// as the DELETE sees it, and an event only once no delivery of it is left, so a delivery made
// unfinished meanwhile (a redelivery, a replay) keeps its event. SQLite has one writer.
import type { Kysely } from 'kysely';
import type { StoreDialect } from '../dialect.js';
import { retryConflicts } from '../retry-conflicts.js';
import { type Database, UNFINISHED_STATUSES } from '../schema.js';
import type { PurgeBatch, PurgeCursor } from '../store.js';
import { chunk } from './chunk.js';

/** The old events of one call, oldest first, from `after` on. */
function oldEvents(
  db: Kysely<Database>,
  cutoff: number,
  limit: number,
  after: PurgeCursor | undefined,
  lock: 'lock' | 'read',
  dialect: StoreDialect['name'],
) {
  return db
    .selectFrom('events')
    .select(['id', 'created_at'])
    .where('created_at', '<', cutoff)
    .$if(after !== undefined, (q) => {
      const { createdAt, id } = after as PurgeCursor;
      // Written so both dialects range-scan events_created from the cursor's time.
      return q
        .where('created_at', '>=', createdAt)
        .where((eb) => eb.or([eb('created_at', '>', createdAt), eb('id', '>', id)]));
    })
    .orderBy('created_at')
    .orderBy('id')
    .limit(limit)
    .$if(lock === 'lock' && dialect === 'postgres', (q) => q.forUpdate().skipLocked())
    .execute();
}

/** Of these events, those with a delivery not yet made. */
async function eventsStillInUse(db: Kysely<Database>, eventIds: string[]): Promise<Set<string>> {
  const busy = new Set<string>();
  for (const ids of chunk(eventIds, 500)) {
    const rows = await db
      .selectFrom('deliveries')
      .select('event_id')
      .distinct()
      .where('event_id', 'in', ids)
      .where('status', 'in', UNFINISHED_STATUSES)
      .execute();
    for (const row of rows) busy.add(row.event_id);
  }
  return busy;
}

function cursorAfter(rows: { id: string; created_at: number }[], limit: number): PurgeCursor | undefined {
  const last = rows[rows.length - 1];
  return rows.length < limit || last === undefined ? undefined : { createdAt: Number(last.created_at), id: last.id };
}

export function purgeOlderThan(
  dialect: StoreDialect,
  cutoff: number,
  limit: number,
  after?: PurgeCursor,
): Promise<PurgeBatch> {
  return retryConflicts(() => purgeBatch(dialect, cutoff, limit, after));
}

function purgeBatch(dialect: StoreDialect, cutoff: number, limit: number, after?: PurgeCursor): Promise<PurgeBatch> {
  return dialect.writeTransaction(async (trx) => {
    const old = await oldEvents(trx, cutoff, limit, after, 'lock', dialect.name);
    const busy = await eventsStillInUse(
      trx,
      old.map((e) => e.id),
    );
    const purgeable = old.filter((e) => !busy.has(e.id)).map((e) => e.id);
    let deliveries = 0;
    let attempts = 0;
    let events = 0;
    for (const ids of chunk(purgeable, 500)) {
      const deleted = await trx
        .deleteFrom('deliveries')
        .where('event_id', 'in', ids)
        .where('status', 'not in', UNFINISHED_STATUSES)
        .returning('id')
        .execute();
      deliveries += deleted.length;
      for (const deliveryIds of chunk(
        deleted.map((d) => d.id),
        500,
      )) {
        const result = await trx.deleteFrom('attempts').where('delivery_id', 'in', deliveryIds).executeTakeFirst();
        attempts += Number(result.numDeletedRows);
      }
      const result = await trx
        .deleteFrom('events')
        .where('id', 'in', ids)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(selectFrom('deliveries').select('deliveries.id').whereRef('deliveries.event_id', '=', 'events.id')),
          ),
        )
        .executeTakeFirst();
      events += Number(result.numDeletedRows);
    }
    return { examined: old.length, events, deliveries, attempts, next: cursorAfter(old, limit) };
  });
}

/** What purgeOlderThan would remove in the same call, changing nothing (`--dry-run`). */
export async function countPurgeable(
  dialect: StoreDialect,
  cutoff: number,
  limit: number,
  after?: PurgeCursor,
): Promise<PurgeBatch> {
  const { db } = dialect;
  const old = await oldEvents(db, cutoff, limit, after, 'read', dialect.name);
  const busy = await eventsStillInUse(
    db,
    old.map((e) => e.id),
  );
  const purgeable = old.filter((e) => !busy.has(e.id)).map((e) => e.id);
  let deliveries = 0;
  let attempts = 0;
  for (const ids of chunk(purgeable, 500)) {
    const counted = await db
      .selectFrom('deliveries')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('event_id', 'in', ids)
      .executeTakeFirstOrThrow();
    deliveries += Number(counted.n);
    const logged = await db
      .selectFrom('attempts')
      .innerJoin('deliveries', 'deliveries.id', 'attempts.delivery_id')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('deliveries.event_id', 'in', ids)
      .executeTakeFirstOrThrow();
    attempts += Number(logged.n);
  }
  return { examined: old.length, events: purgeable.length, deliveries, attempts, next: cursorAfter(old, limit) };
}

/** Events created before `cutoff`, finished or not: what a purge will look at. */
export async function countEventsOlderThan(dialect: StoreDialect, cutoff: number): Promise<number> {
  const row = await dialect.db
    .selectFrom('events')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('created_at', '<', cutoff)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
