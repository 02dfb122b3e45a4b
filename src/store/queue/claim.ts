// Claim: take up to `limit` due deliveries under a lease, in one statement. A delivery is due when
// it is pending and its time has come, or when it is `sending` and its lease (kept in
// next_attempt_at) has run out because the process holding it died. PostgreSQL skips rows another
// node is claiming (FOR UPDATE SKIP LOCKED); SQLite has a single writer and needs no such care.
import { type Kysely, sql } from 'kysely';
import { signingSecretsAt } from '../../domain/secret-rotation.js';
import type { StoreDialect } from '../dialect.js';
import type { CallbacksTable, Database, SubscriptionsTable } from '../schema.js';
import type { ClaimedDelivery, DeliveryTarget, EventRecord } from '../store.js';
import { unique } from './chunk.js';
import { orderKeysOf, promoteWaiting } from './ordering.js';
import { eventRecordFromRow } from './publish.js';
import { releaseClaims } from './release.js';
import { applyThrottles } from './throttle.js';

/** deliveries.manual: 0 = scheduled; ONE_OFF = a single manual attempt on a finished delivery;
 * NUDGE = a manual attempt now on a delivery still in its retry schedule. */
export const MANUAL_NONE = 0;
export const MANUAL_ONE_OFF = 1;
export const MANUAL_NUDGE = 2;

/**
 * What a dispatcher may claim: the claimable statuses, outside listen sessions. Written as SQL
 * literals on purpose: with bound parameters SQLite cannot tell that the filter matches the
 * partial index `deliveries_due` and scans the whole table.
 */
export const CLAIMABLE = sql<boolean>`status in ('pending', 'sending') and listen = 0`;
/** The same for one listen session's deliveries (partial index `deliveries_listen_due`). */
const LISTEN_CLAIMABLE = sql<boolean>`status in ('pending', 'sending') and listen = 1`;

/** The claimable rows of a dispatcher, or of one listen session. */
const claimableFor = (listenSession: string | undefined) =>
  listenSession === undefined ? CLAIMABLE : sql<boolean>`${LISTEN_CLAIMABLE} and subscription_id = ${listenSession}`;

export interface EventCache {
  get(id: string): EventRecord | undefined;
  set(event: EventRecord): void;
}

export async function claimDueDeliveries(
  dialect: StoreDialect,
  events: EventCache,
  owner: string,
  limit: number,
  now: number,
  leaseMs: number,
  listenSession?: string,
): Promise<ClaimedDelivery[]> {
  const { db } = dialect;
  const rows =
    dialect.name === 'postgres'
      ? await claimPostgres(db, owner, limit, now, leaseMs, listenSession)
      : await claimSqlite(db, owner, limit, now, leaseMs, listenSession);
  if (rows.length === 0) return [];

  let loaded: [Map<string, EventRecord>, Map<string, SubscriptionsTable>, Map<string, CallbacksTable>];
  try {
    loaded = await Promise.all([
      loadEvents(db, events, unique(rows.map((r) => r.event_id))),
      loadSubscriptions(db, unique(rows.flatMap((r) => (r.subscription_id ? [r.subscription_id] : [])))),
      loadCallbacks(db, unique(rows.filter((r) => r.subscription_id === null).map((r) => r.account_id))),
    ]);
  } catch (err) {
    // Nothing was sent: give the claims back (their attempt never started) rather than leave them
    // leased with no attempt until the lease runs out. If that fails too, the lease brings them back.
    await releaseClaims(
      dialect,
      owner,
      rows.map((r) => r.id),
      now,
    ).catch(() => undefined);
    throw err;
  }
  const [eventsById, subscriptions, callbacks] = loaded;

  const claimed: ClaimedDelivery[] = [];
  const toHold: string[] = [];
  const toCancel: string[] = [];
  for (const row of rows) {
    const event = eventsById.get(row.event_id);
    const trigger = row.manual === MANUAL_NONE ? 'scheduled' : 'manual';
    let target: DeliveryTarget | undefined;
    if (row.subscription_id !== null) {
      const sub = subscriptions.get(row.subscription_id);
      if (!sub || sub.deleted_at !== null) {
        toCancel.push(row.id);
        continue;
      }
      // Paused or disabled since the delivery was queued: hold it (an operator's manual attempt still goes).
      if (sub.status !== 'active' && trigger === 'scheduled') {
        toHold.push(row.id);
        continue;
      }
      target = subscriptionTarget(sub, now);
    } else {
      const cb = callbacks.get(row.account_id);
      if (!cb || cb.url === '') {
        toCancel.push(row.id);
        continue;
      }
      target = callbackTarget(cb, now);
    }
    if (!event) {
      toCancel.push(row.id);
      continue;
    }
    claimed.push({
      ...(row.was_status === 'sending' && row.was_owner !== null ? { takenOverFrom: row.was_owner } : {}),
      id: row.id,
      eventId: row.event_id,
      accountId: row.account_id,
      subscriptionId: row.subscription_id,
      attempt: row.attempt_count,
      attemptsBefore: row.attempt_count - 1 - row.round_start,
      trigger,
      oneOff: row.manual === MANUAL_ONE_OFF,
      event,
      target,
    });
  }
  if (toHold.length > 0 || toCancel.length > 0) {
    await settleUnsendable(dialect, owner, toHold, toCancel, now);
  }
  const rates = new Map<string, number>();
  for (const d of claimed) {
    const rate = d.subscriptionId === null ? null : subscriptions.get(d.subscriptionId)?.rate_limit_per_second;
    if (rate != null) rates.set(d.subscriptionId as string, rate);
  }
  return applyThrottles(dialect, owner, claimed, rates, now);
}

/** Where and how a subscription's delivery goes: retired signing secrets sign too until each expires. */
export function subscriptionTarget(sub: SubscriptionsTable, now: number): DeliveryTarget {
  return {
    kind: 'subscription',
    url: sub.target_url,
    secretTokenSealed: sub.secret_token_sealed,
    signingSecretsSealed: signingSecretsAt(sub.signing_secret_sealed, sub.retired_secrets, now),
  };
}

/** Where and how an account callback delivery goes. */
export function callbackTarget(cb: CallbacksTable, now: number): DeliveryTarget {
  return {
    kind: 'callback',
    url: cb.url,
    authType: cb.auth_type,
    username: cb.username,
    passwordSealed: cb.password_sealed,
    bearerTokenSealed: cb.bearer_token_sealed,
    signingSecretsSealed: signingSecretsAt(cb.signing_secret_sealed, cb.retired_secrets, now),
  };
}

interface ClaimedRow {
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

/**
 * PostgreSQL: one statement. The subquery picks and locks the due rows (skipping those another
 * node is claiming) and carries their previous owner out through RETURNING.
 */
async function claimPostgres(
  db: Kysely<Database>,
  owner: string,
  limit: number,
  now: number,
  leaseMs: number,
  listenSession: string | undefined,
): Promise<ClaimedRow[]> {
  const result = await sql<ClaimedRow>`
    update deliveries as d
    set status = 'sending', lease_owner = ${owner}, next_attempt_at = ${now + leaseMs},
        attempt_count = d.attempt_count + 1, updated_at = ${now}
    from (
      select id, status as was_status, lease_owner as was_owner from deliveries
      where ${claimableFor(listenSession)} and next_attempt_at <= ${now}
      order by next_attempt_at limit ${limit}
      for update skip locked
    ) as due
    where d.id = due.id
    returning d.id, d.event_id, d.account_id, d.subscription_id, d.attempt_count, d.round_start, d.manual,
      due.was_status, due.was_owner`.execute(db);
  return result.rows;
}

/**
 * SQLite: RETURNING cannot name a FROM clause's columns, so the due rows are read first and then
 * claimed by id. The UPDATE checks again that each is still due: another process (the CLI, a
 * worker on the same file) may have written in between, and a row it claimed is no longer due.
 */
async function claimSqlite(
  db: Kysely<Database>,
  owner: string,
  limit: number,
  now: number,
  leaseMs: number,
  listenSession: string | undefined,
): Promise<ClaimedRow[]> {
  const due = await db
    .selectFrom('deliveries')
    .select(['id', 'status', 'lease_owner'])
    .where(claimableFor(listenSession))
    .where('next_attempt_at', '<=', now)
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute();
  if (due.length === 0) return [];
  const before = new Map(due.map((r) => [r.id, r]));
  const rows = await db
    .updateTable('deliveries')
    .set({
      status: 'sending',
      lease_owner: owner,
      next_attempt_at: now + leaseMs,
      attempt_count: sql`attempt_count + 1`,
      updated_at: now,
    })
    .where('id', 'in', [...before.keys()])
    .where(sql<boolean>`status in ('pending', 'sending')`)
    .where('next_attempt_at', '<=', now)
    .returning(['id', 'event_id', 'account_id', 'subscription_id', 'attempt_count', 'round_start', 'manual'])
    .execute();
  return rows.map((row) => {
    const was = before.get(row.id);
    return { ...row, was_status: was?.status ?? 'pending', was_owner: was?.lease_owner ?? null };
  });
}

/**
 * Gives back claims that must not be sent: the attempt they counted never happened. A cancelled
 * one lets the next delivery of its document go (ordered subscriptions).
 */
async function settleUnsendable(
  dialect: StoreDialect,
  owner: string,
  toHold: string[],
  toCancel: string[],
  now: number,
): Promise<void> {
  await dialect.writeTransaction(async (trx) => {
    for (const [ids, status] of [
      [toHold, 'held'],
      [toCancel, 'cancelled'],
    ] as const) {
      if (ids.length === 0) continue;
      await trx
        .updateTable('deliveries')
        .set({
          status,
          lease_owner: null,
          attempt_count: sql`attempt_count - 1`,
          next_attempt_at: now,
          updated_at: now,
        })
        .where('id', 'in', ids)
        .where('lease_owner', '=', owner)
        .where('status', '=', 'sending')
        .execute();
    }
    if (toCancel.length > 0) await promoteWaiting(trx, dialect.name, await orderKeysOf(trx, toCancel), now);
  });
}

async function loadEvents(db: Kysely<Database>, cache: EventCache, ids: string[]): Promise<Map<string, EventRecord>> {
  const found = new Map<string, EventRecord>();
  const missing: string[] = [];
  for (const id of ids) {
    const hit = cache.get(id);
    if (hit) found.set(id, hit);
    else missing.push(id);
  }
  if (missing.length > 0) {
    const rows = await db.selectFrom('events').selectAll().where('id', 'in', missing).execute();
    for (const row of rows) {
      const record = eventRecordFromRow(row);
      // Other deliveries of a fanned-out event may be claimed later; a lone delivery's event not.
      if (record.deliveryCount > 1) cache.set(record);
      found.set(row.id, record);
    }
  }
  return found;
}

async function loadSubscriptions(db: Kysely<Database>, ids: string[]): Promise<Map<string, SubscriptionsTable>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('subscriptions').selectAll().where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r]));
}

async function loadCallbacks(db: Kysely<Database>, accountIds: string[]): Promise<Map<string, CallbacksTable>> {
  if (accountIds.length === 0) return new Map();
  const rows = await db.selectFrom('callbacks').selectAll().where('account_id', 'in', accountIds).execute();
  return new Map(rows.map((r) => [r.account_id, r]));
}
