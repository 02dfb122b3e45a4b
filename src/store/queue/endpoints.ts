// Endpoints in the queue. An endpoint is where deliveries go: a subscription, or an account's
// callback. Its key is the subscription id, or the account id for the callback. Each delivery also carries `queue_key`, a 52-bit hash of that key, which the queue index
// `deliveries_due (queue_key, next_attempt_at)` is ordered by: an integer keeps the index as
// compact as one keyed by due time alone (the text key made each entry about 75 % larger, and a
// million-delivery backlog's index outgrew SQLite's page cache). Two endpoints sharing a hash
// (about one chance in 10⁵ among 100,000 endpoints) share a fair share in a claim round, nothing
// more: whatever acts on one endpoint's deliveries (postponing, releasing) also checks its key.
//
// The queue is walked endpoint by endpoint: one index seek finds the next queue key with work
// after a given one, one more its earliest due delivery (a loose index scan), so finding every
// endpoint with due deliveries costs a few seeks per endpoint however long any one backlog is.
import { sql } from 'kysely';
import type { StoreDialect } from '../dialect.js';

import { queueKeyOf } from '../queue-key.js';

export { queueKeyOf };

/**
 * What a dispatcher may claim: the claimable statuses, outside listen sessions. Written as SQL
 * literals on purpose: with bound parameters SQLite cannot tell that the filter matches the
 * partial index `deliveries_due` and scans the whole table.
 */
export const CLAIMABLE = sql<boolean>`status in ('pending', 'sending') and listen = 0`;

/**
 * One endpoint's deliveries: by queue key (the queue indexes' first column) and by key (exact,
 * should two endpoints share a queue key).
 */
export function ofEndpoint(key: string) {
  return sql<boolean>`queue_key = ${queueKeyOf(key)} and coalesce(subscription_id, account_id) = ${key}`;
}

/** The same in code. */
export function endpointKey(d: { subscriptionId: string | null; accountId: string }): string {
  return d.subscriptionId ?? d.accountId;
}

export interface QueuedEndpoint {
  /** The endpoint's key (of its earliest due delivery, should two share a queue key). */
  key: string;
  queueKey: number;
  accountId: string;
  /** The earliest next_attempt_at of its claimable deliveries (a lease's expiry for one being sent). */
  due: number;
}

interface EndpointRow {
  queue_key: number | string;
  key: string;
  account_id: string;
  due: number | string;
}

/**
 * Endpoints with claimable deliveries whose queue key comes after `after`, in queue-key order, at
 * most `max`. Each costs two seeks: the next queue key, and its earliest due delivery.
 */
export async function queuedEndpoints(dialect: StoreDialect, after: number, max: number): Promise<QueuedEndpoint[]> {
  const walk = sql`
    with recursive ep(q) as (
      select (select queue_key from deliveries
              where ${CLAIMABLE} and queue_key > ${after}
              order by queue_key limit 1)
      union all
      select (select x.queue_key from deliveries as x
              where ${claimableAs('x')} and x.queue_key > ep.q
              order by x.queue_key limit 1)
      from ep where ep.q is not null
    )`;
  // Each endpoint's head is one index seek. PostgreSQL is told so with a lateral join: joining the
  // walk to `deliveries` by id lets its planner, which cannot estimate the walk, hash the whole
  // table instead (a sequential scan on every claim). SQLite has no LATERAL, and its planner looks
  // each head up by primary key.
  const result =
    dialect.name === 'postgres'
      ? await sql<EndpointRow>`${walk}
    select ep.q as queue_key, h.key, h.account_id, h.due
    from ep cross join lateral (
      select coalesce(x.subscription_id, x.account_id) as key, x.account_id, x.next_attempt_at as due
      from deliveries as x
      where ${claimableAs('x')} and x.queue_key = ep.q
      order by x.queue_key, x.next_attempt_at limit 1) as h
    where ep.q is not null
    limit ${max}`.execute(dialect.db)
      : await sql<EndpointRow>`${walk},
    heads(q, id) as (
      select ep.q, (select x.id from deliveries as x
        where ${claimableAs('x')} and x.queue_key = ep.q
        order by x.queue_key, x.next_attempt_at limit 1)
      from ep where ep.q is not null
    )
    select heads.q as queue_key, coalesce(d.subscription_id, d.account_id) as key, d.account_id, d.next_attempt_at as due
    from heads join deliveries as d on d.id = heads.id
    limit ${max}`.execute(dialect.db);
  return result.rows.map((r) => ({
    key: r.key,
    queueKey: Number(r.queue_key),
    accountId: r.account_id,
    due: Number(r.due),
  }));
}

/** The claimable predicate for an aliased `deliveries` (SQL literals, to match the partial index). */
function claimableAs(alias: 'x') {
  return sql<boolean>`${sql.ref(`${alias}.status`)} in ('pending', 'sending') and ${sql.ref(`${alias}.listen`)} = 0`;
}

/** How many endpoints `nextDueAt` looks at; past that, the poll finds what it missed. */
const NEXT_DUE_SCAN = 10_000;

/**
 * The earliest time any claimable delivery falls due (a retry, a lease running out); with `after`,
 * the earliest of the endpoints with nothing due by then. An endpoint with deliveries due already
 * is one the last claim left for want of room: its dispatcher claims again when it has room, and
 * waking for it sooner would only claim nothing again.
 */
export async function nextDueAt(dialect: StoreDialect, after?: number): Promise<number | undefined> {
  const endpoints = await queuedEndpoints(dialect, -1, NEXT_DUE_SCAN);
  let soonest: number | undefined;
  for (const e of endpoints) {
    if (after !== undefined && e.due <= after) continue;
    if (soonest === undefined || e.due < soonest) soonest = e.due;
  }
  return soonest;
}
