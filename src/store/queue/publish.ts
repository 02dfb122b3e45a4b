// Publish: commit a batch of events and one delivery per matching target, all in one transaction.
// Concurrent API requests are grouped into one call of this function (group commit), so the cost
// of a transaction is shared by every event in the tick.
import type { Kysely } from 'kysely';
import { newId } from '../../domain/ids.js';
import type { StoreDialect } from '../dialect.js';
import type { Database, DeliveriesTable, EventsTable } from '../schema.js';
import type { EventRecord, PublishRequest, PublishResult } from '../store.js';
import { chunk, unique } from './chunk.js';

export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

interface FanOutTarget {
  subscriptionId: string | null;
  held: boolean;
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
  };
}

export async function publishEvents(
  dialect: StoreDialect,
  requests: PublishRequest[],
  now: number,
): Promise<PublishResult[]> {
  return dialect.writeTransaction(async (trx) => {
    const results: (PublishResult | undefined)[] = new Array(requests.length);
    const sameKeyAs = new Map<number, number>();
    const toInsert = await resolveIdempotency(trx, requests, now, results, sameKeyAs);

    const targets = await loadFanOut(
      trx,
      toInsert.map((i) => requests[i] as PublishRequest),
    );
    const eventRows: EventsTable[] = [];
    const deliveryRows: DeliveriesTable[] = [];
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
      };
      const eventTargets = targets[n] as FanOutTarget[];
      event.delivery_count = eventTargets.length;
      eventRows.push(event);
      for (const target of eventTargets) {
        deliveryRows.push({
          id: newId('dlv'),
          event_id: event.id,
          account_id: event.account_id,
          subscription_id: target.subscriptionId,
          status: target.held ? 'held' : 'pending',
          attempt_count: 0,
          round_start: 0,
          manual: 0,
          next_attempt_at: now,
          lease_owner: null,
          created_at: now,
          updated_at: now,
          delivered_at: null,
        });
      }
      results[i] = { ok: true, event: eventRecordFromRow(event), replayed: false };
    }

    const lostRace = await insertEvents(trx, eventRows);
    const liveDeliveries = lostRace.size === 0 ? deliveryRows : deliveryRows.filter((d) => !lostRace.has(d.event_id));
    for (const rows of chunk(liveDeliveries, 400)) {
      await trx.insertInto('deliveries').values(rows).execute();
    }
    if (lostRace.size > 0) await replayLostRaces(trx, requests, results, lostRace);
    for (const [i, first] of sameKeyAs) {
      const firstResult = results[first] as PublishResult;
      const request = requests[i] as PublishRequest;
      const sameBody = request.requestHash === (requests[first] as PublishRequest).requestHash;
      results[i] =
        firstResult.ok && sameBody
          ? { ...firstResult, replayed: true }
          : { ok: false, reason: 'idempotency_key_reused' };
    }
    if (liveDeliveries.some((d) => d.status === 'pending')) await dialect.notifyDue(trx);
    return results as PublishResult[];
  });
}

/**
 * Fills `results` for requests whose idempotency key was used in the last 24 h and returns the
 * indexes that need a new event. A key older than the window is released for reuse.
 */
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

/** For each request, the subscriptions (and the callback) that get a delivery. */
async function loadFanOut(trx: Kysely<Database>, requests: PublishRequest[]): Promise<FanOutTarget[][]> {
  if (requests.length === 0) return [];
  const fanOut = requests.filter((r) => r.onlySubscriptionId === undefined);
  const accountIds = unique(fanOut.map((r) => r.accountId));
  const subsByKey = new Map<string, FanOutTarget[]>();
  const callbackAccounts = new Set<string>();
  if (accountIds.length > 0) {
    const subs = await trx
      .selectFrom('subscriptions')
      .select(['id', 'account_id', 'event_type', 'status'])
      .where('account_id', 'in', accountIds)
      .where('event_type', 'in', unique(fanOut.map((r) => r.type)))
      .where('deleted_at', 'is', null)
      .where('status', 'in', ['active', 'paused'])
      .orderBy('id')
      .execute();
    for (const sub of subs) {
      const key = `${sub.account_id}\0${sub.event_type}`;
      const list = subsByKey.get(key) ?? [];
      list.push({ subscriptionId: sub.id, held: sub.status !== 'active' });
      subsByKey.set(key, list);
    }
    const callbacks = await trx
      .selectFrom('callbacks')
      .select('account_id')
      .where('account_id', 'in', accountIds)
      .where('url', '<>', '')
      .execute();
    for (const cb of callbacks) callbackAccounts.add(cb.account_id);
  }
  const direct = unique(requests.flatMap((r) => (r.onlySubscriptionId ? [r.onlySubscriptionId] : [])));
  // The owner of each directly addressed subscription: an event never reaches another account's.
  const directOwner = new Map<string, string>();
  if (direct.length > 0) {
    const rows = await trx
      .selectFrom('subscriptions')
      .select(['id', 'account_id'])
      .where('id', 'in', direct)
      .where('deleted_at', 'is', null)
      .execute();
    for (const row of rows) directOwner.set(row.id, row.account_id);
  }
  return requests.map((r) => {
    if (r.onlySubscriptionId !== undefined) {
      return directOwner.get(r.onlySubscriptionId) === r.accountId
        ? [{ subscriptionId: r.onlySubscriptionId, held: false }]
        : [];
    }
    const subs = subsByKey.get(`${r.accountId}\0${r.type}`) ?? [];
    return callbackAccounts.has(r.accountId) ? [...subs, { subscriptionId: null, held: false }] : subs;
  });
}

/**
 * Inserts the events. A keyed event can lose a race with another process inserting the same key
 * at the same moment (PostgreSQL); those are skipped and returned so the caller answers with the
 * winner's event.
 */
async function insertEvents(trx: Kysely<Database>, rows: EventsTable[]): Promise<Set<string>> {
  const lost = new Set<string>();
  for (const batch of chunk(rows, 500)) {
    if (!batch.some((r) => r.idempotency_key !== null)) {
      await trx.insertInto('events').values(batch).execute();
      continue;
    }
    const inserted = await trx
      .insertInto('events')
      .values(batch)
      .onConflict((oc) =>
        oc.columns(['account_id', 'idempotency_key']).where('idempotency_key', 'is not', null).doNothing(),
      )
      .returning('id')
      .execute();
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
