// Subscriptions: create, read, change, rotate and delete. A subscription takes one or more event
// types; each live subscription has a row per type in subscription_event_types, which fan-out
// reads and whose unique index is the seed's 409 (no two live subscriptions of an account share a
// target_url and an event type). The check below names the clash; the index is what holds under
// concurrent writers on PostgreSQL.
import type { Kysely } from 'kysely';
import { joinEventTypes, splitEventTypes } from '../domain/events.js';
import { MAX_SIGNING_SECRETS, planRotation } from '../domain/secret-rotation.js';
import { describeSpan, toIsoSeconds } from '../domain/time.js';
import { CountersignError } from '../errors.js';
import type { StoreDialect } from './dialect.js';
import { resetCircuit } from './queue/circuits.js';
import { refuseAtQuota } from './quota.js';
import { type Database, type SubscriptionsTable, UNFINISHED_STATUSES } from './schema.js';
import type { Page, SubscriptionFilter, SubscriptionPatch } from './store.js';

type Subscription = SubscriptionsTable;

/**
 * The account's subscription with this id, unless deleted: the one query every route starts from.
 * Listen sessions are subscriptions of another kind, reached through their own routes only.
 */
export function liveSubscription(
  db: Kysely<Database>,
  accountId: string,
  id: string,
): Promise<Subscription | undefined> {
  return db
    .selectFrom('subscriptions')
    .selectAll()
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('deleted_at', 'is', null)
    .where('kind', '=', 'webhook')
    .executeTakeFirst();
}

export function duplicateSubscription(clash?: { event_type: string; subscription_id: string }): CountersignError {
  const which = clash ? ` (${clash.subscription_id} takes ${clash.event_type} at this target_url)` : '';
  return new CountersignError(
    'subscription_exists',
    `a subscription with this target_url and event_type already exists${which}`,
  );
}

/** Refuses, with the seed's 409, types that another live subscription takes at this target_url. */
async function refuseOverlap(
  trx: Kysely<Database>,
  accountId: string,
  targetUrl: string,
  types: string[],
  self: string,
): Promise<void> {
  const clash = await trx
    .selectFrom('subscription_event_types')
    .select(['event_type', 'subscription_id'])
    .where('account_id', '=', accountId)
    .where('target_url', '=', targetUrl)
    .where('event_type', 'in', types)
    .where('subscription_id', '<>', self)
    .orderBy('event_type')
    .executeTakeFirst();
  if (clash) throw duplicateSubscription(clash);
}

export async function writeTypeRows(trx: Kysely<Database>, sub: Subscription): Promise<void> {
  const types = splitEventTypes(sub.event_types);
  await refuseOverlap(trx, sub.account_id, sub.target_url, types, sub.id);
  await trx.deleteFrom('subscription_event_types').where('subscription_id', '=', sub.id).execute();
  await trx
    .insertInto('subscription_event_types')
    .values(
      types.map((event_type) => ({
        subscription_id: sub.id,
        event_type,
        account_id: sub.account_id,
        target_url: sub.target_url,
      })),
    )
    .execute();
}

/** Runs `work`, turning a unique violation (a concurrent writer won the race) into the seed's 409. */
async function mapDuplicate<T>(d: StoreDialect, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (d.isUniqueViolation(err)) throw duplicateSubscription();
    throw err;
  }
}

/** Inserts a subscription; with `maxPerAccount`, a 409 quota_exceeded instead once the account has that many live ones. */
export function createSubscription(d: StoreDialect, sub: Subscription, maxPerAccount?: number): Promise<void> {
  return mapDuplicate(d, () =>
    d.writeTransaction(async (trx) => {
      if (maxPerAccount !== undefined) {
        const live = async () => {
          const row = await trx
            .selectFrom('subscriptions')
            .select((eb) => eb.fn.countAll<number | string>().as('n'))
            .where('account_id', '=', sub.account_id)
            .where('deleted_at', 'is', null)
            .where('kind', '=', 'webhook')
            .executeTakeFirst();
          return Number(row?.n ?? 0);
        };
        await refuseAtQuota(
          trx,
          d,
          sub.account_id,
          maxPerAccount,
          live,
          `this account has ${maxPerAccount} subscriptions, as many as it may (COUNTERSIGN_MAX_SUBSCRIPTIONS); delete one first`,
        );
      }
      await trx.insertInto('subscriptions').values(sub).execute();
      await writeTypeRows(trx, sub);
    }),
  );
}

export async function listSubscriptions(
  db: Kysely<Database>,
  accountId: string,
  filter: SubscriptionFilter,
): Promise<Page<Subscription>> {
  const rows = await db
    .selectFrom('subscriptions')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('deleted_at', 'is', null)
    .where('kind', '=', 'webhook')
    .$if(filter.eventType !== undefined, (q) =>
      q.where(({ exists, selectFrom }) =>
        exists(
          selectFrom('subscription_event_types')
            .select('subscription_event_types.event_type')
            .whereRef('subscription_event_types.subscription_id', '=', 'subscriptions.id')
            .where('subscription_event_types.event_type', '=', filter.eventType as string),
        ),
      ),
    )
    .$if(filter.status !== undefined, (q) => q.where('status', '=', filter.status as Subscription['status']))
    .$if(filter.cursor !== undefined, (q) => q.where('id', '<', filter.cursor as string))
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  if (rows.length <= filter.limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, filter.limit);
  return { items, nextCursor: (items[items.length - 1] as Subscription).id };
}

/**
 * Applies the patch, rewrites the type rows when the target or the types change, and holds or
 * releases the subscription's deliveries, all in one transaction. `released` is told when
 * deliveries became due again.
 */
export function updateSubscription(
  d: StoreDialect,
  accountId: string,
  id: string,
  patch: SubscriptionPatch,
  now: number,
  released: () => void,
): Promise<Subscription | undefined> {
  return mapDuplicate(d, () =>
    d.writeTransaction(async (trx) => {
      const current = await liveSubscription(trx, accountId, id);
      if (!current) return undefined;
      const changes: Partial<Subscription> = { updated_at: now };
      if (patch.targetUrl !== undefined) changes.target_url = patch.targetUrl;
      if (patch.eventTypes !== undefined) changes.event_types = joinEventTypes(patch.eventTypes);
      if (patch.secretTokenSealed !== undefined) changes.secret_token_sealed = patch.secretTokenSealed;
      if (patch.rateLimitPerSecond !== undefined) changes.rate_limit_per_second = patch.rateLimitPerSecond;
      if (patch.ordering !== undefined) changes.ordering = patch.ordering;
      if (patch.status !== undefined && patch.status !== current.status) {
        changes.status = patch.status;
        if (patch.status === 'active') {
          changes.disabled_reason = null;
          changes.failing_since = null;
        }
      }
      const next = { ...current, ...changes };
      await trx.updateTable('subscriptions').set(changes).where('id', '=', id).execute();
      if (next.target_url !== current.target_url || next.event_types !== current.event_types) {
        await writeTypeRows(trx, next);
      }
      // A new target is a new endpoint, and an operator reactivating a disabled subscription ends
      // its failure run: either way its circuit starts closed.
      if (next.target_url !== current.target_url || (current.status === 'disabled' && changes.status === 'active')) {
        if ((await resetCircuit(trx, id, now)) > 0 && next.status === 'active') {
          await d.notifyDue(trx);
          queueMicrotask(released);
        }
      }
      if (changes.status === 'paused') {
        await trx
          .updateTable('deliveries')
          .set({ status: 'held', updated_at: now })
          .where('subscription_id', '=', id)
          .where('status', 'in', ['pending', 'postponed'])
          .execute();
      } else if (changes.status === 'active') {
        const result = await trx
          .updateTable('deliveries')
          .set({ status: 'pending', next_attempt_at: now, updated_at: now })
          .where('subscription_id', '=', id)
          .where('status', '=', 'held')
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) > 0) {
          await d.notifyDue(trx);
          queueMicrotask(released);
        }
      }
      if (current.ordering === 'document' && next.ordering === 'none') {
        // No longer ordered: what waited behind an earlier delivery of its document goes now.
        const result = await trx
          .updateTable('deliveries')
          .set({ status: next.status === 'active' ? 'pending' : 'held', next_attempt_at: now, updated_at: now })
          .where('subscription_id', '=', id)
          .where('status', '=', 'waiting')
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) > 0 && next.status === 'active') {
          await d.notifyDue(trx);
          queueMicrotask(released);
        }
      }
      return next;
    }),
  );
}

/** A 409 when a rotation would leave more secrets signing than MAX_SIGNING_SECRETS. */
export function tooManySecrets(signing: number, nextExpiry: number, now: number): CountersignError {
  return new CountersignError(
    'conflict',
    `${signing + 1} signing secrets would sign at once, and at most ${MAX_SIGNING_SECRETS} may: the next retired secret ` +
      `expires at ${toIsoSeconds(nextExpiry)} (in ${describeSpan(nextExpiry - now)}); rotate then, or with ` +
      'grace_period_seconds 0 to drop the current secret at once',
  );
}

export function rotateSigningSecret(
  d: StoreDialect,
  accountId: string,
  id: string,
  signingSecretSealed: string,
  previousValidUntil: number,
  now: number,
): Promise<Subscription | undefined> {
  return d.writeTransaction(async (trx) => {
    const current = await liveSubscription(trx, accountId, id);
    if (!current) return undefined;
    const plan = planRotation(current.signing_secret_sealed, current.retired_secrets, previousValidUntil, now);
    if (!plan.ok) throw tooManySecrets(plan.signing, plan.nextExpiry, now);
    const changes = { signing_secret_sealed: signingSecretSealed, retired_secrets: plan.retiredJson, updated_at: now };
    await trx.updateTable('subscriptions').set(changes).where('id', '=', id).execute();
    return { ...current, ...changes };
  });
}

/** Soft-deletes and cancels every delivery not yet made; its type rows go, so its target is free. */
export function deleteSubscription(d: StoreDialect, accountId: string, id: string, now: number): Promise<boolean> {
  return d.writeTransaction(async (trx) => {
    const result = await trx
      .updateTable('subscriptions')
      .set({ deleted_at: now, updated_at: now })
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return false;
    await trx.deleteFrom('subscription_event_types').where('subscription_id', '=', id).execute();
    await trx.deleteFrom('endpoint_circuits').where('endpoint', '=', id).execute();
    await trx
      .updateTable('deliveries')
      .set({ status: 'cancelled', lease_owner: null, updated_at: now })
      .where('subscription_id', '=', id)
      .where('status', 'in', UNFINISHED_STATUSES)
      .execute();
    return true;
  });
}
