// The statements that take due deliveries under a lease. A delivery is due when it is pending and
// its time has come, or when it is `sending` and its lease (kept in next_attempt_at) has run out
// because the process holding it died. Taking one sets it `sending`, leased to the claimer, and
// counts its attempt. PostgreSQL skips rows another node is claiming (FOR UPDATE SKIP LOCKED);
// SQLite has a single writer.
//
// A dispatcher's claim names how many to take from each endpoint (`EndpointQuota`), each endpoint's
// earliest first; a listen session's claim takes its own deliveries in due order.
import { type Kysely, type RawBuilder, sql } from 'kysely';
import type { StoreDialect } from '../dialect.js';
import type { Database } from '../schema.js';
import { chunk } from './chunk.js';
import { CLAIMABLE } from './endpoints.js';

export interface EndpointQuota {
  key: string;
  queueKey: number;
  n: number;
}

export interface ClaimedRow {
  id: string;
  event_id: string;
  account_id: string;
  subscription_id: string | null;
  attempt_count: number;
  round_start: number;
  manual: number;
  /** The status and lease owner before this claim: a `sending` row was a lease that ran out. */
  was_status: string;
  was_owner: string | null;
}

const LISTEN_CLAIMABLE = sql<boolean>`status in ('pending', 'sending') and listen = 1`;

/** SQLite takes at most this many endpoints' picks in one compound SELECT. */
const SQLITE_ENDPOINTS_PER_PICK = 50;

/** Up to `n` due deliveries of each endpoint, leased to `owner`. */
export async function claimEndpointRows(
  dialect: StoreDialect,
  owner: string,
  quotas: EndpointQuota[],
  now: number,
  leaseMs: number,
): Promise<ClaimedRow[]> {
  if (quotas.length === 0) return [];
  if (dialect.name === 'postgres') {
    // One statement: each endpoint's due rows through the queue index, locked and skipped when
    // another node is claiming them, then leased; RETURNING carries their previous owner out.
    const due = sql`
      select x.id, x.status as was_status, x.lease_owner as was_owner
      from unnest(${quotas.map((q) => q.queueKey)}::bigint[], ${quotas.map((q) => q.n)}::int[]) as q(queue_key, n)
      cross join lateral (
        select id, status, lease_owner from deliveries
        where ${CLAIMABLE} and queue_key = q.queue_key and next_attempt_at <= ${now}
        order by next_attempt_at limit q.n
        for update skip locked
      ) as x`;
    return leasePostgres(dialect.db, owner, due, now, leaseMs);
  }
  // SQLite: RETURNING cannot name a FROM clause's columns, so the due rows are read first and then
  // claimed by id; the UPDATE checks again that each is still due, since another process (the CLI,
  // a worker on the same file) may have written in between.
  const picked: { id: string; status: string; lease_owner: string | null }[] = [];
  for (const part of chunk(quotas, SQLITE_ENDPOINTS_PER_PICK)) {
    const selects = part.map(
      (q) =>
        sql`select * from (select id, status, lease_owner from deliveries
            where ${CLAIMABLE} and queue_key = ${q.queueKey} and next_attempt_at <= ${now}
            order by next_attempt_at limit ${q.n})`,
    );
    const rows = await sql<{ id: string; status: string; lease_owner: string | null }>`${sql.join(
      selects,
      sql` union all `,
    )}`.execute(dialect.db);
    picked.push(...rows.rows);
  }
  return leaseSqlite(dialect.db, owner, picked, now, leaseMs);
}

/** Up to `limit` due deliveries of one listen session, earliest first, leased to `owner`. */
export async function claimListenRows(
  dialect: StoreDialect,
  owner: string,
  session: string,
  limit: number,
  now: number,
  leaseMs: number,
): Promise<ClaimedRow[]> {
  if (dialect.name === 'postgres') {
    const due = sql`
      select id, status as was_status, lease_owner as was_owner from deliveries
      where ${LISTEN_CLAIMABLE} and subscription_id = ${session} and next_attempt_at <= ${now}
      order by next_attempt_at limit ${limit}
      for update skip locked`;
    return leasePostgres(dialect.db, owner, due, now, leaseMs);
  }
  const picked = await dialect.db
    .selectFrom('deliveries')
    .select(['id', 'status', 'lease_owner'])
    .where(LISTEN_CLAIMABLE)
    .where('subscription_id', '=', session)
    .where('next_attempt_at', '<=', now)
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute();
  return leaseSqlite(dialect.db, owner, picked, now, leaseMs);
}

async function leasePostgres(
  db: Kysely<Database>,
  owner: string,
  due: RawBuilder<unknown>,
  now: number,
  leaseMs: number,
): Promise<ClaimedRow[]> {
  const result = await sql<ClaimedRow>`
    update deliveries as d
    set status = 'sending', lease_owner = ${owner}, next_attempt_at = ${now + leaseMs},
        attempt_count = d.attempt_count + 1, updated_at = ${now}
    from (${due}) as due
    where d.id = due.id
    returning d.id, d.event_id, d.account_id, d.subscription_id, d.attempt_count, d.round_start, d.manual,
      due.was_status, due.was_owner`.execute(db);
  return result.rows;
}

async function leaseSqlite(
  db: Kysely<Database>,
  owner: string,
  picked: { id: string; status: string; lease_owner: string | null }[],
  now: number,
  leaseMs: number,
): Promise<ClaimedRow[]> {
  if (picked.length === 0) return [];
  const before = new Map(picked.map((r) => [r.id, r]));
  const out: ClaimedRow[] = [];
  for (const ids of chunk([...before.keys()], 500)) {
    const rows = await db
      .updateTable('deliveries')
      .set({
        status: 'sending',
        lease_owner: owner,
        next_attempt_at: now + leaseMs,
        attempt_count: sql`attempt_count + 1`,
        updated_at: now,
      })
      .where('id', 'in', ids)
      .where(sql<boolean>`status in ('pending', 'sending')`)
      .where('next_attempt_at', '<=', now)
      .returning(['id', 'event_id', 'account_id', 'subscription_id', 'attempt_count', 'round_start', 'manual'])
      .execute();
    for (const row of rows) {
      const was = before.get(row.id);
      out.push({ ...row, was_status: was?.status ?? 'pending', was_owner: was?.lease_owner ?? null });
    }
  }
  return out;
}
