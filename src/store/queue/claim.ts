// Claim: take due deliveries under a lease (the statements are in claim-rows.ts), fairly across
// endpoints and accounts, and hand the sender everything it needs. Claimed rows that must not be
// sent go back at once without their attempt: held (subscription paused), cancelled (deleted),
// postponed (the endpoint's circuit is open; one of them may go as its probe).
import { type Kysely, sql } from 'kysely';
import { fairSharesByGroup } from '../../domain/fair-share.js';
import { signingSecretsAt } from '../../domain/secret-rotation.js';
import type { StoreDialect } from '../dialect.js';
import type { CallbacksTable, Database, SubscriptionsTable } from '../schema.js';
import type { ClaimedDelivery, ClaimRequest, ClaimRound, DeliveryTarget, EventRecord } from '../store.js';
import { unique } from './chunk.js';
import { type CircuitRow, settleTripped, takeProbe, trippedCircuits } from './circuits.js';
import { type ClaimedRow, claimEndpointRows, claimListenRows, type EndpointQuota } from './claim-rows.js';
import { endpointKey, type QueuedEndpoint, queuedEndpoints } from './endpoints.js';
import { orderKeysOf, promoteWaiting } from './ordering.js';
import { eventRecordFromRow } from './publish.js';
import { releaseClaims } from './release.js';
import { applyThrottles } from './throttle.js';

/** deliveries.manual: 0 = scheduled; ONE_OFF = a single manual attempt on a finished delivery;
 * NUDGE = a manual attempt now on a delivery still in its retry schedule. */
export const MANUAL_NONE = 0;
export const MANUAL_ONE_OFF = 1;
export const MANUAL_NUDGE = 2;

export interface EventCache {
  get(id: string): EventRecord | undefined;
  set(event: EventRecord): void;
}

/** A round gives each endpoint it serves at least this many, room permitting (see planQuotas). */
const MIN_QUOTA = 8;

/**
 * Endpoints looked at per round: four times as many as a round serves (planQuotas), at least 64.
 * Walking a thousand endpoints to serve sixty-three of them made a fan-out's claim rounds cost more
 * than the sends they claimed. The cursor makes the next round go on from there.
 */
const endpointsPerRound = (limit: number) => Math.max(64, 4 * Math.ceil(limit / MIN_QUOTA));

/**
 * One claim round of a dispatcher. Walks the endpoints with queued work (src/store/queue/endpoints.ts),
 * divides `limit` fairly among those with due deliveries, first among their accounts and then
 * among each account's endpoints, each asking for no more than its `room`, and takes each
 * endpoint's share earliest first. So one endpoint's backlog never stands in front of another's due
 * deliveries, one account's endpoints never crowd out another account, and an endpoint the
 * dispatcher already holds enough of is left in the database, unread.
 */
export async function claimRound(
  dialect: StoreDialect,
  events: EventCache,
  owner: string,
  limit: number,
  now: number,
  leaseMs: number,
  options: ClaimRequest,
  /** Where the last round's walk over the endpoints stopped; moved to where this one stops. */
  cursor: { after: number },
): Promise<ClaimRound> {
  const after = cursor.after;
  const walk = endpointsPerRound(limit);
  let endpoints = await queuedEndpoints(dialect, after, walk);
  let walkCut = endpoints.length === walk;
  if (!walkCut && after !== -1) {
    // Round the ring: the endpoints before the cursor come after those past it.
    const before = await queuedEndpoints(dialect, -1, walk - endpoints.length);
    const wrapped = before.filter((e) => e.queueKey <= after);
    walkCut = wrapped.length < before.length ? false : before.length === walk - endpoints.length;
    endpoints = [...endpoints, ...wrapped];
  }
  const due = endpoints.filter((e) => e.due <= now);
  const roomOf = (key: string) => Math.min(limit, options.room?.(key) ?? limit);

  // Shares are planned without knowing how many each endpoint has due: what one leaves unused
  // goes, in a further pass, to those that gave all they were asked.
  const rows: ClaimedRow[] = [];
  const takenBy = new Map<string, number>();
  // Only endpoints the claimer has room for: one it holds enough of stays in the database, unread.
  let candidates = due.filter((e) => roomOf(e.key) > 0);
  /** Endpoints that gave all they were asked in their last pass: the queue may hold more of theirs. */
  const gaveAll = new Set<string>();
  let firstPlan: EndpointQuota[] | undefined;
  /** Endpoints with room that a pass left out (see planQuotas): the next round serves them first. */
  let skipped = false;
  for (let pass = 0; pass < CLAIM_PASSES && rows.length < limit && candidates.length > 0; pass++) {
    const { plan, leftOut } = planQuotas(
      candidates,
      limit - rows.length,
      (key) => roomOf(key) - (takenBy.get(key) ?? 0),
    );
    if (leftOut) skipped = true;
    if (plan.length === 0) {
      candidates = [];
      break;
    }
    firstPlan ??= plan;
    const taken = await claimEndpointRows(dialect, owner, plan, now, leaseMs);
    const inPass = new Map<string, number>();
    for (const r of taken) {
      const key = r.subscription_id ?? r.account_id;
      inPass.set(key, (inPass.get(key) ?? 0) + 1);
      takenBy.set(key, (takenBy.get(key) ?? 0) + 1);
    }
    rows.push(...taken);
    for (const q of plan) {
      if ((inPass.get(q.key) ?? 0) >= q.n) gaveAll.add(q.key);
      else gaveAll.delete(q.key);
    }
    candidates = candidates.filter((e) => gaveAll.has(e.key) && roomOf(e.key) > (takenBy.get(e.key) ?? 0));
  }
  const full = [...gaveAll];
  const limited = walkCut || skipped || candidates.length > 0;
  // The next round starts after the last endpoint served when this one could not serve them all.
  cursor.after = limited && firstPlan !== undefined ? (firstPlan[firstPlan.length - 1] as EndpointQuota).queueKey : -1;
  if (walkCut && firstPlan === undefined) cursor.after = (endpoints[endpoints.length - 1] as QueuedEndpoint).queueKey;
  if (rows.length === 0) return { deliveries: [], full, limited };
  const deliveries = await completeClaim(dialect, events, owner, rows, now, options.probeTimeoutMs);
  return { deliveries, full, limited };
}

/** How many passes a claim round makes at most to hand out what some endpoints left unused. */
const CLAIM_PASSES = 3;

/**
 * Each due endpoint's share of `limit`, in the walk's order: accounts first, then each account's
 * endpoints, each wanting at most its room. A round serves at most limit ÷ MIN_QUOTA endpoints,
 * chosen in turn across accounts, so that a share is worth its statement: with a thousand
 * endpoints and a limit of 500, one delivery each would cost a thousand subselects a round. The
 * ones left out come first in the next round (the walk goes on after the last one served).
 */
function planQuotas(
  due: QueuedEndpoint[],
  limit: number,
  room: ((endpoint: string) => number) | undefined,
): { plan: EndpointQuota[]; leftOut: boolean } {
  const wantOf = (e: QueuedEndpoint) => Math.max(0, Math.min(limit, room?.(e.key) ?? limit));
  const wanting = due.filter((e) => wantOf(e) > 0);
  const most = Math.max(1, Math.ceil(limit / MIN_QUOTA));
  let chosen = wanting;
  if (wanting.length > most) {
    const picked = new Set<QueuedEndpoint>();
    const queues = byAccount(wanting);
    for (let i = 0; picked.size < most; i++) {
      for (const members of queues) {
        const e = members[i];
        if (e !== undefined && picked.size < most) picked.add(e);
      }
    }
    chosen = wanting.filter((e) => picked.has(e));
  }
  const groups = byAccount(chosen);
  const parts = fairSharesByGroup(
    groups.map((members) => members.map(wantOf)),
    limit,
  );
  const planned = new Map<string, number>();
  groups.forEach((members, g) => {
    members.forEach((e, i) => {
      const n = parts[g]?.[i] ?? 0;
      if (n > 0) planned.set(e.key, n);
    });
  });
  // In the walk's order, so the cursor can go on after the last one served.
  const plan = chosen.flatMap((e) => {
    const n = planned.get(e.key);
    return n === undefined ? [] : [{ key: e.key, queueKey: e.queueKey, n }];
  });
  return { plan, leftOut: chosen.length < wanting.length };
}

/** Endpoints grouped by account, accounts in the order their first endpoint comes, each group in order. */
function byAccount(endpoints: QueuedEndpoint[]): QueuedEndpoint[][] {
  const accounts = new Map<string, QueuedEndpoint[]>();
  for (const e of endpoints) {
    const members = accounts.get(e.accountId);
    if (members) members.push(e);
    else accounts.set(e.accountId, [e]);
  }
  return [...accounts.values()];
}

/** The sender's view of claimed rows: events and targets loaded, unsendable ones settled, circuits and throttles applied. */
async function completeClaim(
  dialect: StoreDialect,
  events: EventCache,
  owner: string,
  rows: ClaimedRow[],
  now: number,
  probeTimeoutMs: number,
): Promise<ClaimedDelivery[]> {
  if (rows.length === 0) return [];
  const { db } = dialect;
  let loaded: [
    Map<string, EventRecord>,
    Map<string, SubscriptionsTable>,
    Map<string, CallbacksTable>,
    Map<string, CircuitRow>,
  ];
  try {
    loaded = await Promise.all([
      loadEvents(db, events, unique(rows.map((r) => r.event_id))),
      loadSubscriptions(db, unique(rows.flatMap((r) => (r.subscription_id ? [r.subscription_id] : [])))),
      loadCallbacks(db, unique(rows.filter((r) => r.subscription_id === null).map((r) => r.account_id))),
      trippedCircuits(db, unique(rows.map((r) => r.subscription_id ?? r.account_id))),
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
  const [eventsById, subscriptions, callbacks, circuits] = loaded;

  let claimed: ClaimedDelivery[] = [];
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
  const tripped = circuits.size === 0 ? undefined : await probeOrPostpone(db, claimed, circuits, now, probeTimeoutMs);
  if (tripped) claimed = tripped.send;
  if (toHold.length > 0 || toCancel.length > 0 || (tripped && tripped.postponed.size > 0)) {
    await settleUnsendable(dialect, owner, toHold, toCancel, tripped?.postponed ?? new Map(), now);
  }
  const rates = new Map<string, number>();
  for (const d of claimed) {
    const rate = d.subscriptionId === null ? null : subscriptions.get(d.subscriptionId)?.rate_limit_per_second;
    if (rate != null) rates.set(d.subscriptionId as string, rate);
  }
  return applyThrottles(dialect, owner, claimed, rates, now);
}

/**
 * Claimed deliveries of endpoints whose circuit is open or half-open. The earliest scheduled one
 * goes as the probe when this claim wins the circuit's probe (its window has ended, or an earlier
 * probe went unanswered); an operator's manual attempt goes whatever the circuit says (its answer
 * closes the circuit, or counts against it); the rest are postponed.
 */
async function probeOrPostpone(
  db: Kysely<Database>,
  claimed: ClaimedDelivery[],
  circuits: Map<string, CircuitRow>,
  now: number,
  probeTimeoutMs: number,
): Promise<{ send: ClaimedDelivery[]; postponed: Map<string, { ids: string[] }> }> {
  const send: ClaimedDelivery[] = [];
  const postponed = new Map<string, { ids: string[] }>();
  const probing = new Map<string, boolean>();
  for (const d of [...claimed].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const key = endpointKey(d);
    const row = circuits.get(key);
    if (row === undefined || d.trigger === 'manual') {
      send.push(d);
      continue;
    }
    if (!probing.has(key)) {
      const won = await takeProbe(db, row, now, probeTimeoutMs);
      probing.set(key, won);
      if (won) {
        send.push({ ...d, probe: true });
        continue;
      }
    }
    let entry = postponed.get(key);
    if (!entry) {
      entry = { ids: [] };
      postponed.set(key, entry);
    }
    entry.ids.push(d.id);
  }
  return { send, postponed };
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

/**
 * Gives back claims that must not be sent: the attempt they counted never happened. A cancelled
 * one lets the next delivery of its document go (ordered subscriptions); a postponed one leaves
 * the rest of its endpoint's queue postponed with it.
 */
async function settleUnsendable(
  dialect: StoreDialect,
  owner: string,
  toHold: string[],
  toCancel: string[],
  toPostpone: Map<string, { ids: string[] }>,
  now: number,
): Promise<void> {
  const postponed = [...toPostpone.values()].flatMap((p) => p.ids);
  await dialect.writeTransaction(async (trx) => {
    for (const [ids, status] of [
      [toHold, 'held'],
      [toCancel, 'cancelled'],
      [postponed, 'postponed'],
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
    for (const key of toPostpone.keys()) await settleTripped(trx, key, now);
  });
}

/** claimRound for one listen session's deliveries, which no dispatcher claims: earliest first, no circuit. */
export async function claimListenSession(
  dialect: StoreDialect,
  events: EventCache,
  owner: string,
  session: string,
  limit: number,
  now: number,
  leaseMs: number,
): Promise<ClaimedDelivery[]> {
  const rows = await claimListenRows(dialect, owner, session, limit, now, leaseMs);
  return completeClaim(dialect, events, owner, rows, now, 0);
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
