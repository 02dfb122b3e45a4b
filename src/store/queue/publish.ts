// Publish: commit a batch of events and one delivery per matching target, all in one transaction.
// Concurrent API requests are grouped into one call of this function (group commit), so the cost
// of a transaction is shared by every event in the tick. A dispatcher in the same process can take
// the new deliveries under its lease right here (direct hand-off), sparing each one the claim
// statement; a crash before they are sent is then covered by the lease, as for any claim.
import type { Kysely } from 'kysely';
import { isEventType } from '../../domain/events.js';
import { newId } from '../../domain/ids.js';
import type { DialectName, StoreDialect } from '../dialect.js';
import { GenerationCache } from '../generation-cache.js';
import { queueKeyOf } from '../queue-key.js';
import type { CallbacksTable, Database, DeliveriesTable, EventsTable, SubscriptionsTable } from '../schema.js';
import {
  BatchRefusedError,
  type ClaimedDelivery,
  type DeliveryTarget,
  type EventRecord,
  type PublishClaim,
  type PublishRequest,
  type PublishResult,
} from '../store.js';
import { allColumns, bulkInsert } from './bulk-insert.js';
import { chunk, unique } from './chunk.js';
import { callbackTarget, subscriptionTarget } from './claim.js';
import { gateOrdered } from './ordering.js';

export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

const EVENT_COLUMNS = allColumns<EventsTable>({
  id: true,
  account_id: true,
  type: true,
  data: true,
  occurred_at: true,
  created_at: true,
  idempotency_key: true,
  request_hash: true,
  delivery_count: true,
  test: true,
  document_id: true,
  source: true,
});
const insertEventRows = bulkInsert<EventsTable>('events', EVENT_COLUMNS);
/** A keyed event that loses a race for its key is skipped; the ids returned are the ones written. */
const insertKeyedEventRows = bulkInsert<EventsTable>(
  'events',
  EVENT_COLUMNS,
  'on conflict ("account_id", "idempotency_key") where "idempotency_key" is not null do nothing returning "id"',
);
export const insertDeliveryRows = bulkInsert<DeliveriesTable>(
  'deliveries',
  allColumns<DeliveriesTable>({
    id: true,
    event_id: true,
    account_id: true,
    subscription_id: true,
    status: true,
    attempt_count: true,
    round_start: true,
    manual: true,
    next_attempt_at: true,
    lease_owner: true,
    created_at: true,
    updated_at: true,
    delivered_at: true,
    listen: true,
    order_key: true,
    queue_key: true,
  }),
);

interface FanOutTarget {
  subscriptionId: string | null;
  held: boolean;
  /** Its endpoint's circuit is open or half-open: the delivery is postponed, never handed off. */
  tripped: boolean;
  /** A listen session's: claimed only by the process holding its stream, never at publish. */
  listen: boolean;
  /** Ordered per document: the delivery carries the document id as its order key. */
  ordered: boolean;
  /** Rate-limited: only a claim, which reserves its send slot, may take it. */
  throttled: boolean;
  /** What the sender needs, should the delivery be claimed at publish. */
  target: DeliveryTarget;
}

export interface PublishedBatch {
  results: PublishResult[];
  /** New deliveries leased to `claim.owner`, ready to send. */
  claimed: ClaimedDelivery[];
  /** New deliveries left pending for any dispatcher to claim. */
  queued: number;
  /**
   * Whether a claim in this process could take any of them: false when every one was left only
   * because the claimer had no room for its endpoint (a claim would skip those too).
   */
  wake: boolean;
  /** The new events with deliveries among those `queued`: a claim will need them soon. */
  queuedEvents: EventRecord[];
}

export function eventRecordFromRow(row: EventsTable): EventRecord {
  return {
    id: row.id,
    accountId: row.account_id,
    type: row.type,
    dataJson: row.data,
    occurredAt: row.occurred_at,
    createdAt: row.created_at,
    deliveryCount: row.delivery_count,
    test: row.test === 1,
    documentId: row.document_id,
    ...(row.source === 'lifecycle' ? { source: 'lifecycle' as const } : {}),
  };
}

export async function publishEvents(
  dialect: StoreDialect,
  requests: PublishRequest[],
  now: number,
  claim?: PublishClaim,
  fanOutCache?: FanOutCache,
  /** Refuse the whole batch (rolled back, BatchRefusedError) when any request is refused. */
  allOrNothing = false,
  /** Refuse the whole batch (BatchRefusedError) when it would make more deliveries than this. */
  maxDeliveries?: number,
): Promise<PublishedBatch> {
  return dialect.writeTransaction((trx) =>
    publishWithin(trx, dialect, requests, now, claim, fanOutCache, allOrNothing, maxDeliveries),
  );
}

/** Before anything is written: a BatchRefusedError when the events' targets add up past `max`. */
function refuseTooMany(targets: FanOutTarget[][], toInsert: number[], max: number): void {
  let total = 0;
  let firstPast = -1;
  for (const [n, list] of targets.entries()) {
    total += list.length;
    if (total > max && firstPast === -1) firstPast = toInsert[n] ?? n;
  }
  if (firstPast !== -1) throw new BatchRefusedError(firstPast, 'too_many_deliveries', total);
}

/** publishEvents' body, in a transaction the caller holds (recordAttempts publishes operational events in its own). */
export async function publishWithin(
  trx: Kysely<Database>,
  dialect: StoreDialect,
  requests: PublishRequest[],
  now: number,
  claim?: PublishClaim,
  fanOutCache?: FanOutCache,
  allOrNothing = false,
  maxDeliveries?: number,
): Promise<PublishedBatch> {
  const results: (PublishResult | undefined)[] = new Array(requests.length);
  const sameKeyAs = new Map<number, number>();
  await refuseLifecycleDocuments(trx, requests, results, allOrNothing);
  const toInsert = await resolveIdempotency(trx, requests, now, results, sameKeyAs);

  const fanOutVersion = dialect.fanOutVersion();
  const targets = await loadFanOut(
    trx,
    toInsert.map((i) => requests[i] as PublishRequest),
    now,
    fanOutVersion === undefined ? undefined : fanOutCache?.at(fanOutVersion),
  );
  if (maxDeliveries !== undefined) refuseTooMany(targets, toInsert, maxDeliveries);
  const eventRows: EventsTable[] = [];
  const deliveryRows: DeliveriesTable[] = [];
  let claimed: ClaimedDelivery[] = [];
  let queuedEvents: EventRecord[] = [];
  /** Deliveries handed off per endpoint, against the dispatcher's room for it. */
  const takenFor = new Map<string, number>();
  let wake = false;
  for (const [n, i] of toInsert.entries()) {
    const request = requests[i] as PublishRequest;
    const event: EventsTable = {
      id: newId('evt'),
      account_id: request.accountId,
      type: request.type,
      data: request.dataJson,
      occurred_at: request.occurredAt,
      created_at: now,
      idempotency_key: request.idempotencyKey ?? null,
      request_hash: request.requestHash ?? null,
      delivery_count: 0,
      test: request.test ? 1 : 0,
      document_id: request.documentId ?? null,
      source: request.source ?? null,
    };
    const eventTargets = targets[n] as FanOutTarget[];
    event.delivery_count = eventTargets.length;
    eventRows.push(event);
    const record = eventRecordFromRow(event);
    let leftQueued = false;
    for (const target of eventTargets) {
      const endpoint = target.subscriptionId ?? event.account_id;
      const takeable =
        claim !== undefined &&
        !target.held &&
        !target.tripped &&
        !target.listen &&
        !target.ordered &&
        !target.throttled &&
        claimed.length < claim.limit;
      const roomless = takeable && claim.room !== undefined && (takenFor.get(endpoint) ?? 0) >= claim.room(endpoint);
      const take = takeable && !roomless;
      if (take) takenFor.set(endpoint, (takenFor.get(endpoint) ?? 0) + 1);
      if (!take && !target.held && !target.tripped) {
        leftQueued = true;
        if (roomless) claim?.roomless?.(endpoint);
        else wake = true;
      }
      const id = newId('dlv');
      deliveryRows.push({
        id,
        event_id: event.id,
        account_id: event.account_id,
        subscription_id: target.subscriptionId,
        status: take ? 'sending' : target.held ? 'held' : target.tripped ? 'postponed' : 'pending',
        attempt_count: take ? 1 : 0,
        round_start: 0,
        manual: 0,
        // A claimed delivery's lease expiry, as claimDueDeliveries would set it.
        next_attempt_at: take ? now + claim.leaseMs : now,
        lease_owner: take ? claim.owner : null,
        created_at: now,
        updated_at: now,
        delivered_at: null,
        listen: target.listen ? 1 : 0,
        order_key: target.ordered && !request.test ? (request.documentId ?? null) : null,
        queue_key: queueKeyOf(endpoint),
      });
      if (take) {
        claimed.push({
          id,
          eventId: event.id,
          accountId: event.account_id,
          subscriptionId: target.subscriptionId,
          attempt: 1,
          attemptsBefore: 0,
          trigger: 'scheduled',
          oneOff: false,
          event: record,
          target: target.target,
        });
      }
    }
    if (leftQueued) queuedEvents.push(record);
    results[i] = { ok: true, event: record, replayed: false };
  }

  const lostRace = await insertEvents(trx, dialect.name, eventRows);
  const liveDeliveries = lostRace.size === 0 ? deliveryRows : deliveryRows.filter((d) => !lostRace.has(d.event_id));
  if (lostRace.size > 0) {
    claimed = claimed.filter((c) => !lostRace.has(c.eventId));
    queuedEvents = queuedEvents.filter((e) => !lostRace.has(e.id));
  }
  await gateOrdered(trx, dialect.name, liveDeliveries);
  for (const rows of chunk(liveDeliveries, 400)) await insertDeliveryRows(trx, dialect.name, rows);
  if (lostRace.size > 0) await replayLostRaces(trx, requests, results, lostRace);
  for (const [i, first] of sameKeyAs) {
    const firstResult = results[first] as PublishResult;
    const request = requests[i] as PublishRequest;
    const sameBody = request.requestHash === (requests[first] as PublishRequest).requestHash;
    results[i] =
      firstResult.ok && sameBody ? { ...firstResult, replayed: true } : { ok: false, reason: 'idempotency_key_reused' };
  }
  if (allOrNothing) {
    const refused = results.findIndex((r) => !r?.ok);
    if (refused !== -1) throw new BatchRefusedError(refused, 'idempotency_key_reused');
  }
  let queued = 0;
  for (const d of liveDeliveries) if (d.status === 'pending') queued++;
  if (queued > 0) await dialect.notifyDue(trx);
  return { results: results as PublishResult[], claimed, queued, queuedEvents, wake: wake && queued > 0 };
}

/**
 * Fills `results` for requests whose idempotency key was used in the last 24 h and returns the
 * indexes that need a new event. A key older than the window is released for reuse.
 */
/**
 * Refuses (`lifecycle_document`) every request that is not the lifecycle's own yet names, as its
 * document, one of its account's lifecycle documents: a `document.completed` published through the
 * API for a document the lifecycle declined would otherwise reach receivers signed, with the real
 * audit_url, exactly like a genuine one. One indexed read per batch, and only for requests that
 * name a document.
 */
async function refuseLifecycleDocuments(
  trx: Kysely<Database>,
  requests: PublishRequest[],
  results: (PublishResult | undefined)[],
  allOrNothing: boolean,
): Promise<void> {
  const naming = requests.filter((r) => r.documentId !== undefined && r.source !== 'lifecycle');
  if (naming.length === 0) return;
  const managed = new Set<string>();
  for (const ids of chunk(unique(naming.map((r) => r.documentId as string)), 500)) {
    const rows = await trx.selectFrom('documents').select(['id', 'account_id']).where('id', 'in', ids).execute();
    for (const row of rows) managed.add(`${row.account_id}\0${row.id}`);
  }
  if (managed.size === 0) return;
  requests.forEach((r, i) => {
    if (r.source === 'lifecycle' || r.documentId === undefined) return;
    if (!managed.has(`${r.accountId}\0${r.documentId}`)) return;
    if (allOrNothing) throw new BatchRefusedError(i, 'lifecycle_document');
    results[i] = { ok: false, reason: 'lifecycle_document' };
  });
}

async function resolveIdempotency(
  trx: Kysely<Database>,
  requests: PublishRequest[],
  now: number,
  results: (PublishResult | undefined)[],
  sameKeyAs: Map<number, number>,
): Promise<number[]> {
  const keyed = requests.filter((r) => r.idempotencyKey !== undefined);
  const existing = new Map<string, EventsTable>();
  if (keyed.length > 0) {
    const rows = await trx
      .selectFrom('events')
      .selectAll()
      .where('account_id', 'in', unique(keyed.map((r) => r.accountId)))
      .where('idempotency_key', 'in', unique(keyed.map((r) => r.idempotencyKey as string)))
      .execute();
    const stale: string[] = [];
    for (const row of rows) {
      if (row.created_at <= now - IDEMPOTENCY_WINDOW_MS) stale.push(row.id);
      else existing.set(`${row.account_id}\0${row.idempotency_key}`, row);
    }
    if (stale.length > 0) {
      await trx.updateTable('events').set({ idempotency_key: null }).where('id', 'in', stale).execute();
    }
  }
  const firstIndex = new Map<string, number>();
  const toInsert: number[] = [];
  requests.forEach((request, i) => {
    if (results[i] !== undefined) return;
    if (request.idempotencyKey === undefined) {
      toInsert.push(i);
      return;
    }
    const key = `${request.accountId}\0${request.idempotencyKey}`;
    const previous = existing.get(key);
    if (previous) {
      results[i] =
        previous.request_hash === (request.requestHash ?? null)
          ? { ok: true, event: eventRecordFromRow(previous), replayed: true }
          : { ok: false, reason: 'idempotency_key_reused' };
    } else if (firstIndex.has(key)) {
      sameKeyAs.set(i, firstIndex.get(key) as number);
    } else {
      firstIndex.set(key, i);
      toInsert.push(i);
    }
  });
  return toInsert;
}

/** Entries per generation of the fan-out cache: (account, event type) pairs, and accounts. */
const FAN_OUT_CACHE_SIZE = 5_000;

/**
 * Live subscriptions by (account, event type) and callbacks by account, as read at one fan-out
 * version (`StoreDialect.fanOutVersion`). A publish that finds the version moved starts over, so
 * an entry is never older than the last change to either table. Rows are kept, not targets: a
 * target depends on the time (a rotated-out secret signs only until it expires).
 */
export class FanOutCache {
  private version: number | undefined;
  readonly subscriptions = new GenerationCache<string, FanOutSubscription[]>(FAN_OUT_CACHE_SIZE);
  readonly callbacks = new GenerationCache<string, FanOutCallback | null>(FAN_OUT_CACHE_SIZE);

  /** This cache, emptied if the tables changed since it was filled. */
  at(version: number): this {
    if (version !== this.version) {
      this.subscriptions.clear();
      this.callbacks.clear();
      this.version = version;
    }
    return this;
  }
}

const fanOutKey = (accountId: string, type: string): string => `${accountId}\0${type}`;

/** A subscription or callback as fan-out reads it: with its endpoint's circuit, when not closed. */
type FanOutSubscription = SubscriptionsTable & { circuit_state: string | null };
type FanOutCallback = CallbacksTable & { circuit_state: string | null };

/** Whether a circuit state read with the fan-out rows holds the endpoint's deliveries back. */
const isTripped = (state: string | null): boolean => state !== null && state !== 'closed';

/** For each request, the subscriptions (and the callback) that get a delivery. */
async function loadFanOut(
  trx: Kysely<Database>,
  requests: PublishRequest[],
  now: number,
  cache: FanOutCache | undefined,
): Promise<FanOutTarget[][]> {
  if (requests.length === 0) return [];
  const fanOut = requests.filter((r) => r.onlySubscriptionId === undefined);
  const subsByKey = new Map<string, FanOutSubscription[]>();
  const callbackOf = new Map<string, FanOutCallback | null>();
  const subsMissing = { accounts: new Set<string>(), types: new Set<string>(), keys: new Set<string>() };
  const callbacksMissing = new Set<string>();
  for (const r of fanOut) {
    const key = fanOutKey(r.accountId, r.type);
    if (!subsByKey.has(key)) {
      const subs = cache?.subscriptions.get(key);
      if (subs === undefined) {
        subsMissing.accounts.add(r.accountId);
        subsMissing.types.add(r.type);
        subsMissing.keys.add(key);
      } else subsByKey.set(key, subs);
    }
    if (!callbackOf.has(r.accountId)) {
      const callback = cache?.callbacks.get(r.accountId);
      if (callback === undefined) callbacksMissing.add(r.accountId);
      else callbackOf.set(r.accountId, callback);
    }
  }
  if (subsMissing.keys.size > 0) {
    // A disabled subscription gets no deliveries for new events (recover brings back what it
    // missed); a paused one gets them held.
    const rows = await trx
      .selectFrom('subscription_event_types as t')
      .innerJoin('subscriptions as s', 's.id', 't.subscription_id')
      .leftJoin('endpoint_circuits as c', 'c.endpoint', 's.id')
      .selectAll('s')
      .select(['t.event_type as fan_out_type', 'c.state as circuit_state'])
      .where('t.account_id', 'in', [...subsMissing.accounts])
      .where('t.event_type', 'in', [...subsMissing.types])
      .where('s.deleted_at', 'is', null)
      .where('s.status', 'in', ['active', 'paused'])
      .orderBy('s.id')
      .execute();
    for (const key of subsMissing.keys) subsByKey.set(key, []);
    for (const { fan_out_type, ...sub } of rows) {
      const key = fanOutKey(sub.account_id, fan_out_type);
      // The query spans every pair of the accounts and types asked for, some of them answered from
      // the cache already (whose lists are never changed); only the pairs asked for are filled.
      if (subsMissing.keys.has(key)) subsByKey.get(key)?.push(sub);
    }
    for (const key of subsMissing.keys) cache?.subscriptions.set(key, subsByKey.get(key) as FanOutSubscription[]);
  }
  if (callbacksMissing.size > 0) {
    const rows = await trx
      .selectFrom('callbacks as cb')
      .leftJoin('endpoint_circuits as c', 'c.endpoint', 'cb.account_id')
      .selectAll('cb')
      .select('c.state as circuit_state')
      .where('cb.account_id', 'in', [...callbacksMissing])
      .where('cb.url', '<>', '')
      .execute();
    for (const accountId of callbacksMissing) callbackOf.set(accountId, null);
    for (const cb of rows) callbackOf.set(cb.account_id, cb);
    for (const accountId of callbacksMissing) cache?.callbacks.set(accountId, callbackOf.get(accountId) ?? null);
  }
  const direct = unique(requests.flatMap((r) => (r.onlySubscriptionId ? [r.onlySubscriptionId] : [])));
  // The owner of each directly addressed subscription: an event never reaches another account's.
  const directSubs = new Map<string, SubscriptionsTable>();
  if (direct.length > 0) {
    const rows = await trx
      .selectFrom('subscriptions')
      .selectAll()
      .where('id', 'in', direct)
      .where('deleted_at', 'is', null)
      .execute();
    for (const row of rows) directSubs.set(row.id, row);
  }
  return requests.map((r) => {
    if (r.onlySubscriptionId !== undefined) {
      const sub = directSubs.get(r.onlySubscriptionId);
      // A test event goes whatever the circuit says: it is how an integrator checks a fix.
      return sub?.account_id === r.accountId
        ? [{ ...fanOutOf({ ...sub, circuit_state: null }, now), held: false }]
        : [];
    }
    const targets: FanOutTarget[] = [];
    for (const sub of subsByKey.get(fanOutKey(r.accountId, r.type)) ?? []) {
      if (sub.id !== r.excludeSubscriptionId) targets.push(fanOutOf(sub, now));
    }
    // The account callback takes the seed's document events only, never operational ones.
    const callback = isEventType(r.type) ? callbackOf.get(r.accountId) : undefined;
    if (callback) {
      targets.push({
        subscriptionId: null,
        held: false,
        tripped: isTripped(callback.circuit_state),
        listen: false,
        ordered: false,
        throttled: false,
        target: callbackTarget(callback, now),
      });
    }
    return targets;
  });
}

function fanOutOf(sub: FanOutSubscription, now: number): FanOutTarget {
  return {
    subscriptionId: sub.id,
    held: sub.status !== 'active',
    tripped: isTripped(sub.circuit_state),
    listen: sub.kind === 'listen',
    ordered: sub.ordering === 'document',
    throttled: sub.rate_limit_per_second !== null,
    target: subscriptionTarget(sub, now),
  };
}

/**
 * Inserts the events. A keyed event can lose a race with another process inserting the same key
 * at the same moment (PostgreSQL); those are skipped and returned so the caller answers with the
 * winner's event.
 */
async function insertEvents(trx: Kysely<Database>, dialect: DialectName, rows: EventsTable[]): Promise<Set<string>> {
  const lost = new Set<string>();
  for (const batch of chunk(rows, 500)) {
    if (!batch.some((r) => r.idempotency_key !== null)) {
      await insertEventRows(trx, dialect, batch);
      continue;
    }
    const inserted = (await insertKeyedEventRows(trx, dialect, batch)) as { id: string }[];
    const ids = new Set(inserted.map((r) => r.id));
    for (const row of batch) if (!ids.has(row.id)) lost.add(row.id);
  }
  return lost;
}

async function replayLostRaces(
  trx: Kysely<Database>,
  requests: PublishRequest[],
  results: (PublishResult | undefined)[],
  lost: Set<string>,
): Promise<void> {
  for (const [i, result] of results.entries()) {
    if (!result?.ok || !lost.has(result.event.id)) continue;
    const request = requests[i] as PublishRequest;
    const winner = await trx
      .selectFrom('events')
      .selectAll()
      .where('account_id', '=', request.accountId)
      .where('idempotency_key', '=', request.idempotencyKey as string)
      .executeTakeFirstOrThrow();
    results[i] =
      winner.request_hash === (request.requestHash ?? null)
        ? { ok: true, event: eventRecordFromRow(winner), replayed: true }
        : { ok: false, reason: 'idempotency_key_reused' };
  }
}
