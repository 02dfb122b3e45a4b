// Endpoints in the queue. An endpoint is where deliveries go: a subscription, or an account's
// callback. Its key is the subscription id, or the account id for the callback, written in SQL as
// ENDPOINT_KEY exactly as the queue index `deliveries_due (ENDPOINT_KEY, next_attempt_at)` has it
// (SQLite uses an index on an expression only for the very same expression).
//
// The queue is walked endpoint by endpoint: one index seek finds the next endpoint with work after
// a given key, one more its earliest due time (a loose index scan), so finding every endpoint with
// due deliveries costs a few seeks per endpoint however long any one endpoint's backlog is.
import { sql } from 'kysely';
import type { StoreDialect } from '../dialect.js';

/**
 * What a dispatcher may claim: the claimable statuses, outside listen sessions. Written as SQL
 * literals on purpose: with bound parameters SQLite cannot tell that the filter matches the
 * partial index `deliveries_due` and scans the whole table.
 */
export const CLAIMABLE = sql<boolean>`status in ('pending', 'sending') and listen = 0`;

/** An endpoint's key in SQL, for rows of `deliveries` (unqualified column names). */
export const ENDPOINT_KEY = sql<string>`coalesce(subscription_id, account_id)`;

/** The same in code. */
export function endpointKey(d: { subscriptionId: string | null; accountId: string }): string {
  return d.subscriptionId ?? d.accountId;
}

export interface QueuedEndpoint {
  key: string;
  accountId: string;
  /** The earliest next_attempt_at of its claimable deliveries (a lease's expiry for one being sent). */
  due: number;
}

interface EndpointRow {
  key: string;
  account_id: string;
  due: number | string;
}

/**
 * Endpoints with claimable deliveries whose key comes after `after`, in key order, at most `max`.
 * Each costs three seeks: the next key, its earliest due time and its account.
 */
export async function queuedEndpoints(dialect: StoreDialect, after: string, max: number): Promise<QueuedEndpoint[]> {
  const result = await sql<EndpointRow>`
    with recursive ep(k) as (
      select (select coalesce(subscription_id, account_id) from deliveries
              where ${CLAIMABLE} and coalesce(subscription_id, account_id) > ${after}
              order by coalesce(subscription_id, account_id) limit 1)
      union all
      select (select coalesce(x.subscription_id, x.account_id) from deliveries as x
              where ${claimableAs('x')} and coalesce(x.subscription_id, x.account_id) > ep.k
              order by coalesce(x.subscription_id, x.account_id) limit 1)
      from ep where ep.k is not null
    )
    select ep.k as key,
      (select min(x.next_attempt_at) from deliveries as x
        where ${claimableAs('x')} and coalesce(x.subscription_id, x.account_id) = ep.k) as due,
      (select x.account_id from deliveries as x
        where ${claimableAs('x')} and coalesce(x.subscription_id, x.account_id) = ep.k limit 1) as account_id
    from ep where ep.k is not null
    limit ${max}`.execute(dialect.db);
  return result.rows.map((r) => ({ key: r.key, accountId: r.account_id, due: Number(r.due) }));
}

/** The claimable predicate for an aliased `deliveries` (SQL literals, to match the partial index). */
function claimableAs(alias: 'x') {
  return sql<boolean>`${sql.ref(`${alias}.status`)} in ('pending', 'sending') and ${sql.ref(`${alias}.listen`)} = 0`;
}

/** How many endpoints `nextDueAt` looks at; past that, the poll finds what it missed. */
const NEXT_DUE_SCAN = 10_000;

/** The earliest time any claimable delivery falls due (a retry, a lease running out). */
export async function nextDueAt(dialect: StoreDialect): Promise<number | undefined> {
  const endpoints = await queuedEndpoints(dialect, '', NEXT_DUE_SCAN);
  let soonest: number | undefined;
  for (const e of endpoints) if (soonest === undefined || e.due < soonest) soonest = e.due;
  return soonest;
}
