// Record: write a batch of attempt results in one transaction. Every attempt is logged; a
// delivery's state only moves if this process still holds its lease (otherwise another node has
// taken it over and its own result will count). Successes move together in one UPDATE; retries
// carry their own due time each. The per-minute figures (attempt_stats) are added to in the same
// transaction, one row per account and minute of the batch, in this process's own rows.
import type { Kysely } from 'kysely';
import {
  type CircuitEventData,
  type DeliveryFailedData,
  isOperationalEventType,
  type OperationalEventType,
  type SubscriptionDisabledData,
} from '../../domain/events.js';
import { describeSpan, toIsoMillis } from '../../domain/time.js';
import type { StoreDialect } from '../dialect.js';
import type { AttemptStatsTable, AttemptsTable, Database } from '../schema.js';
import type { AttemptResult, PublishRequest, QueueSettings, RecordOutcome } from '../store.js';
import { allColumns, bulkInsert } from './bulk-insert.js';
import { chunk, unique } from './chunk.js';
import { applyVerdicts, type CircuitChange } from './circuits.js';
import { MANUAL_NONE } from './claim.js';
import { type OrderKey, promoteWaiting } from './ordering.js';
import { publishWithin } from './publish.js';

/** A number is never claimed twice; DO NOTHING only guards a batch against a bug elsewhere. */
const insertAttemptRows = bulkInsert<AttemptsTable>(
  'attempts',
  allColumns<AttemptsTable>({
    delivery_id: true,
    number: true,
    trigger: true,
    started_at: true,
    duration_ms: true,
    status_code: true,
    error: true,
    response_excerpt: true,
    request_url: true,
    request_headers: true,
    response_headers: true,
  }),
  'on conflict ("delivery_id", "number") do nothing',
);

/** How long the per-minute figures are kept; the heartbeat deletes older rows (nodes.ts). */
export const ATTEMPT_STATS_KEEP_MS = 8 * 24 * 3_600_000;
const MINUTE_MS = 60_000;

/**
 * Adds a batch's counts to this process's rows. `node` is in the key, so two processes never
 * update one row and workers on PostgreSQL never wait for each other's row locks here; within a
 * process the dispatcher writes one batch at a time (GroupCommit). A batch holds one row per
 * (account, minute), so no statement touches a row twice (PostgreSQL refuses that in an
 * ON CONFLICT DO UPDATE).
 */
const addAttemptStats = bulkInsert<AttemptStatsTable>(
  'attempt_stats',
  allColumns<AttemptStatsTable>({ account_id: true, minute: true, node: true, delivered: true, failed: true }),
  'on conflict ("account_id", "minute", "node") do update set ' +
    '"delivered" = "attempt_stats"."delivered" + excluded."delivered", ' +
    '"failed" = "attempt_stats"."failed" + excluded."failed"',
);

/** The batch's attempts per account and minute started: delivered, and every other outcome. */
function statsRows(node: string, results: AttemptResult[]): AttemptStatsTable[] {
  const rows = new Map<string, AttemptStatsTable>();
  for (const r of results) {
    const minute = r.startedAt - (r.startedAt % MINUTE_MS);
    const key = `${minute} ${r.accountId}`;
    let row = rows.get(key);
    if (row === undefined) {
      row = { account_id: r.accountId, minute, node, delivered: 0, failed: 0 };
      rows.set(key, row);
    }
    if (r.outcome === 'delivered') row.delivered++;
    else row.failed++;
  }
  return [...rows.values()];
}

export async function recordAttempts(
  dialect: StoreDialect,
  owner: string,
  results: AttemptResult[],
  now: number,
  settings: QueueSettings,
): Promise<RecordOutcome> {
  if (results.length === 0) return { disabled: [], queued: 0, circuits: [] };
  return dialect.writeTransaction(async (trx) => {
    const attemptRows: AttemptsTable[] = results.map((r) => ({
      delivery_id: r.deliveryId,
      number: r.attempt,
      trigger: r.trigger,
      started_at: r.startedAt,
      duration_ms: r.durationMs,
      status_code: r.statusCode,
      error: r.error,
      response_excerpt: r.responseExcerpt,
      request_url: r.requestUrl,
      request_headers: r.requestHeaders,
      response_headers: r.responseHeaders,
    }));
    for (const rows of chunk(attemptRows, 500)) await insertAttemptRows(trx, dialect.name, rows);
    for (const rows of chunk(statsRows(owner, results), 500)) await addAttemptStats(trx, dialect.name, rows);

    const delivered = results.filter((r) => r.outcome === 'delivered').map((r) => r.deliveryId);
    const failed = results.filter((r) => r.outcome === 'failed' || r.outcome === 'gone').map((r) => r.deliveryId);
    // Only the rows this process still held move: a result that lost its lease to a takeover is
    // logged but decides nothing, so the finished list below never holds a delivery twice.
    const finished: FinishedRow[] = [];
    const finishedFailed = new Set<string>();
    for (const ids of chunk(delivered, 500)) {
      const rows = await leased(trx, owner, ids)
        .set({ status: 'delivered', delivered_at: now, lease_owner: null, manual: MANUAL_NONE, updated_at: now })
        .returning(['id', 'subscription_id', 'order_key'])
        .execute();
      finished.push(...rows);
    }
    for (const ids of chunk(failed, 500)) {
      const rows = await leased(trx, owner, ids)
        .set({ status: 'failed', lease_owner: null, manual: MANUAL_NONE, updated_at: now })
        .returning(['id', 'subscription_id', 'order_key'])
        .execute();
      finished.push(...rows);
      for (const r of rows) finishedFailed.add(r.id);
    }
    for (const r of results) {
      if (r.outcome !== 'retry') continue;
      await leased(trx, owner, [r.deliveryId])
        .set({
          status: 'pending',
          next_attempt_at: r.nextAttemptAt ?? now,
          lease_owner: null,
          manual: MANUAL_NONE,
          updated_at: now,
        })
        .execute();
    }
    const disabled = await updateSubscriptionHealth(trx, results, now, settings);
    const circuits = settings.circuit ? await applyVerdicts(trx, dialect, results, now, settings.circuit) : undefined;
    const keys: OrderKey[] = [];
    for (const r of finished) {
      if (r.order_key !== null && r.subscription_id !== null) {
        keys.push({ subscriptionId: r.subscription_id, orderKey: r.order_key });
      }
    }
    const promoted = await promoteWaiting(trx, dialect.name, keys, now);
    if (promoted > 0) await dialect.notifyDue(trx);
    const failedFinally = results.filter((r) => r.trigger === 'scheduled' && finishedFailed.has(r.deliveryId));
    const operational = [
      ...(await operationalEvents(trx, failedFinally, disabled, now)),
      ...(await circuitEvents(trx, circuits?.changes ?? [], now)),
    ];
    const published = operational.length === 0 ? 0 : (await publishWithin(trx, dialect, operational, now)).queued;
    const released = circuits?.released ?? 0;
    if (released > 0 && promoted === 0) await dialect.notifyDue(trx);
    return { disabled, queued: promoted + published + released, circuits: circuits?.changes ?? [] };
  });
}

interface FinishedRow {
  id: string;
  subscription_id: string | null;
  order_key: string | null;
}

/**
 * The operational events this batch makes: `delivery.failed` for each delivery whose retries ran
 * out (scheduled attempts only: a manual one-off on a finished delivery changes nothing), and
 * `subscription.disabled` for each subscription it disabled. Neither goes to the subscription it
 * is about. Failures of operational events themselves, of test events and of listen sessions make
 * none: two dead receivers of `delivery.failed` would otherwise feed each other for ever.
 */
async function operationalEvents(
  trx: Kysely<Database>,
  failedFinally: AttemptResult[],
  disabled: RecordOutcome['disabled'],
  now: number,
): Promise<PublishRequest[]> {
  const requests: PublishRequest[] = [];
  for (const part of chunk(failedFinally, 500)) {
    const rows = await trx
      .selectFrom('deliveries as d')
      .innerJoin('events as e', 'e.id', 'd.event_id')
      .leftJoin('subscriptions as s', 's.id', 'd.subscription_id')
      .leftJoin('callbacks as c', 'c.account_id', 'd.account_id')
      .select([
        'd.id',
        'd.account_id',
        'd.subscription_id',
        'd.event_id',
        'd.attempt_count',
        'd.listen',
        'e.type',
        'e.test',
        's.target_url',
        'c.url as callback_url',
      ])
      .where(
        'd.id',
        'in',
        part.map((r) => r.deliveryId),
      )
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const result of part) {
      const row = byId.get(result.deliveryId);
      if (!row || row.listen === 1 || row.test === 1 || isOperationalEventType(row.type)) continue;
      const data: DeliveryFailedData = {
        subscription_id: row.subscription_id,
        target_url: (row.subscription_id === null ? row.callback_url : row.target_url) ?? '',
        reason: failureReason(result),
        delivery_id: row.id,
        event_id: row.event_id,
        event_type: row.type,
        attempts: row.attempt_count,
      };
      requests.push(operational(row.account_id, 'delivery.failed', data, now, row.subscription_id));
    }
  }
  for (const sub of disabled) {
    const data: SubscriptionDisabledData = { subscription_id: sub.id, target_url: sub.targetUrl, reason: sub.reason };
    requests.push(operational(sub.accountId, 'subscription.disabled', data, now, sub.id));
  }
  return requests;
}

/**
 * `endpoint.circuit_opened` when a closed circuit opens, `endpoint.circuit_closed` when a tripped
 * one closes; a probe that fails again is not news. Each goes to the account's other
 * subscriptions that take it, never to the endpoint it is about.
 */
async function circuitEvents(trx: Kysely<Database>, changes: CircuitChange[], now: number): Promise<PublishRequest[]> {
  const told = changes.filter((c) => c.transition !== 'reopened');
  if (told.length === 0) return [];
  // An account's callback is the endpoint keyed by the account's own id.
  const isCallback = (c: CircuitChange) => c.endpoint === c.accountId;
  const subscriptionIds = told.flatMap((c) => (isCallback(c) ? [] : [c.endpoint]));
  const urls = new Map<string, string>();
  for (const part of chunk(subscriptionIds, 500)) {
    const rows = await trx
      .selectFrom('subscriptions')
      .select(['id', 'target_url', 'kind'])
      .where('id', 'in', part)
      .execute();
    for (const r of rows) if (r.kind === 'webhook') urls.set(r.id, r.target_url);
  }
  const callbackAccounts = told.flatMap((c) => (isCallback(c) ? [c.endpoint] : []));
  for (const part of chunk(callbackAccounts, 500)) {
    const rows = await trx
      .selectFrom('callbacks')
      .select(['account_id', 'url'])
      .where('account_id', 'in', part)
      .execute();
    for (const r of rows) urls.set(r.account_id, r.url);
  }
  const requests: PublishRequest[] = [];
  for (const change of told) {
    const targetUrl = urls.get(change.endpoint);
    if (targetUrl === undefined) continue;
    const callback = isCallback(change);
    const { circuit } = change;
    const data: CircuitEventData = {
      subscription_id: callback ? null : change.endpoint,
      target_url: targetUrl,
      state: circuit.state,
      reason: circuit.reason,
      consecutive_failures: circuit.failures,
      opened_at: circuit.openedAt === null ? null : toIsoMillis(circuit.openedAt),
      next_probe_at: circuit.state === 'open' && circuit.retryAt !== null ? toIsoMillis(circuit.retryAt) : null,
    };
    const type = change.transition === 'closed' ? 'endpoint.circuit_closed' : 'endpoint.circuit_opened';
    requests.push(operational(change.accountId, type, data, now, callback ? null : change.endpoint));
  }
  return requests;
}

function operational(
  accountId: string,
  type: OperationalEventType,
  data: DeliveryFailedData | SubscriptionDisabledData | CircuitEventData,
  now: number,
  about: string | null,
): PublishRequest {
  return {
    accountId,
    type,
    dataJson: JSON.stringify(data),
    occurredAt: now,
    ...(about === null ? {} : { excludeSubscriptionId: about }),
  };
}

/** The last attempt's answer, as the delivery log would put it. */
function failureReason(r: AttemptResult): string {
  if (r.outcome === 'gone') return 'the receiver answered 410 Gone';
  const last = r.statusCode === null ? (r.error ?? 'no answer') : `HTTP ${r.statusCode}`;
  return `its retries ran out; the last attempt got ${last}`;
}

function leased(trx: Kysely<Database>, owner: string, ids: string[]) {
  return trx
    .updateTable('deliveries')
    .where('id', 'in', ids)
    .where('status', '=', 'sending')
    .where('lease_owner', '=', owner);
}

/**
 * A 410 disables the subscription (never a listen session) at once; an unbroken run of failures that has lasted
 * `disableAfterFailingMs` disables it too; any success ends the run. A disabled or paused
 * subscription's queued deliveries are held until it is active again.
 */
async function updateSubscriptionHealth(
  trx: Kysely<Database>,
  results: AttemptResult[],
  now: number,
  settings: QueueSettings,
): Promise<RecordOutcome['disabled']> {
  const disabled: RecordOutcome['disabled'] = [];
  const forSubs = results.filter((r) => r.subscriptionId !== null);
  if (forSubs.length === 0) return disabled;
  const gone = unique(forSubs.filter((r) => r.outcome === 'gone').map((r) => r.subscriptionId as string));
  const failing = unique(forSubs.filter((r) => r.outcome !== 'delivered').map((r) => r.subscriptionId as string));
  const healthy = unique(forSubs.filter((r) => r.outcome === 'delivered').map((r) => r.subscriptionId as string));

  if (gone.length > 0) {
    const reason = 'the receiver answered 410 Gone';
    const rows = await trx
      .updateTable('subscriptions')
      .set({ status: 'disabled', disabled_reason: reason, updated_at: now })
      .where('id', 'in', gone)
      .where('status', '<>', 'disabled')
      // A listen session forwards to a developer's local app: its answers never disable it.
      .where('kind', '=', 'webhook')
      .returning(['id', 'account_id', 'target_url'])
      .execute();
    for (const r of rows) disabled.push({ id: r.id, accountId: r.account_id, targetUrl: r.target_url, reason });
  }
  if (failing.length > 0) {
    await trx
      .updateTable('subscriptions')
      .set({ failing_since: now })
      .where('id', 'in', failing)
      .where('failing_since', 'is', null)
      .execute();
    const reason = `every attempt failed for ${describeSpan(settings.disableAfterFailingMs)}`;
    const rows = await trx
      .updateTable('subscriptions')
      .set({ status: 'disabled', disabled_reason: reason, updated_at: now })
      .where('id', 'in', failing)
      .where('status', '=', 'active')
      .where('kind', '=', 'webhook')
      .where('failing_since', '<=', now - settings.disableAfterFailingMs)
      .returning(['id', 'account_id', 'target_url'])
      .execute();
    for (const r of rows) disabled.push({ id: r.id, accountId: r.account_id, targetUrl: r.target_url, reason });
    await trx
      .updateTable('deliveries')
      .set({ status: 'held', updated_at: now })
      .where('status', 'in', ['pending', 'postponed'])
      .where('subscription_id', 'in', (qb) =>
        qb.selectFrom('subscriptions').select('id').where('id', 'in', failing).where('status', '<>', 'active'),
      )
      .execute();
  }
  if (healthy.length > 0) {
    await trx
      .updateTable('subscriptions')
      .set({ failing_since: null })
      .where('id', 'in', healthy)
      .where('failing_since', 'is not', null)
      .execute();
  }
  return disabled;
}
