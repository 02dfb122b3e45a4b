// The Store over Kysely, for both dialects. Plain CRUD lives here; the queue operations (publish,
// claim, record, release) live in queue/, one file each.

import type { Kysely } from 'kysely';
import { newId } from '../domain/ids.js';
import { CountersignError } from '../errors.js';
import type { StoreDialect } from './dialect.js';
import { GenerationCache } from './generation-cache.js';
import { migrateToLatest } from './migrator.js';
import { chunk } from './queue/chunk.js';
import { CLAIMABLE, claimDueDeliveries, type EventCache, MANUAL_NUDGE, MANUAL_ONE_OFF } from './queue/claim.js';
import { eventRecordFromRow, FanOutCache, publishEvents } from './queue/publish.js';
import { recordAttempts } from './queue/record-attempts.js';
import { releaseClaims } from './queue/release.js';
import type { ApiTokensTable, Database } from './schema.js';
import type {
  Account,
  ApiToken,
  Attempt,
  AttemptResult,
  Callback,
  ClaimedDelivery,
  Delivery,
  DeliveryFilter,
  EventFilter,
  EventRecord,
  Page,
  PublishClaim,
  PublishOutcome,
  PublishRequest,
  PublishResult,
  QueueSettings,
  Store,
  Subscription,
  SubscriptionFilter,
  SubscriptionPatch,
} from './store.js';

const EVENT_CACHE_SIZE = 10_000;

/**
 * Events are immutable, so the dispatcher keeps recent ones rather than reading them back. Only
 * events a claim will need are kept: those published with deliveries left in the queue, and those
 * with more than one delivery. An event whose only delivery went straight to the dispatcher is
 * never read again, and caching it would only fill the old generation.
 */
class RecentEvents implements EventCache {
  private readonly cache = new GenerationCache<string, EventRecord>(EVENT_CACHE_SIZE / 2);
  get(id: string) {
    return this.cache.get(id);
  }
  set(event: EventRecord) {
    this.cache.set(event.id, event);
  }
}

export async function openStore(dialect: StoreDialect, options: { migrate?: boolean } = {}): Promise<KyselyStore> {
  if (options.migrate !== false) await migrateToLatest(dialect);
  const store = new KyselyStore(dialect);
  await store.startListening();
  return store;
}

export class KyselyStore implements Store {
  private readonly events = new RecentEvents();
  /** Subscriptions and callbacks for fan-out, kept while the dialect's fan-out version stands still. */
  private readonly fanOut = new FanOutCache();
  private readonly dueListeners = new Set<() => void>();
  /**
   * Tokens by lookup prefix, with the dialect's change marker at the time they were read: a token
   * is read once, not on every request, yet a revocation by any process is seen on the next request.
   */
  private readonly tokens = new Map<string, { token: ApiToken; marker: number }>();
  private stopListening: (() => Promise<void>) | undefined;

  constructor(private readonly d: StoreDialect) {}

  get dialect() {
    return this.d.name;
  }

  async startListening(): Promise<void> {
    this.stopListening = await this.d.listenDue(() => this.emitDue());
  }

  async ping(): Promise<void> {
    await this.d.db.selectNoFrom((eb) => eb.lit(1).as('one')).execute();
  }

  async close(): Promise<void> {
    await this.stopListening?.();
    await this.d.close();
  }

  onDue(listener: () => void): () => void {
    this.dueListeners.add(listener);
    return () => this.dueListeners.delete(listener);
  }

  private emitDue(): void {
    for (const listener of this.dueListeners) listener();
  }

  // --- accounts and tokens -------------------------------------------------------------------

  async ensureAccount(name: string, now: number): Promise<Account> {
    const { db } = this.d;
    await db
      .insertInto('accounts')
      .values({ id: newId('acc'), name, created_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const row = await db.selectFrom('accounts').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
    return { id: row.id, name: row.name, createdAt: row.created_at };
  }

  async countAccounts(): Promise<number> {
    const row = await this.d.db
      .selectFrom('accounts')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async createToken(input: {
    accountId: string;
    lookup: string;
    hash: string;
    scopes: string[];
    expiresAt: number | null;
    now: number;
  }): Promise<{ id: string }> {
    const id = newId('tok');
    await this.d.db
      .insertInto('api_tokens')
      .values({
        id,
        account_id: input.accountId,
        lookup: input.lookup,
        hash: input.hash,
        scopes: input.scopes.join(' '),
        created_at: input.now,
        expires_at: input.expiresAt,
        revoked_at: null,
        last_used_at: null,
      })
      .execute();
    return { id };
  }

  private tokenQuery() {
    return this.d.db
      .selectFrom('api_tokens')
      .innerJoin('accounts', 'accounts.id', 'api_tokens.account_id')
      .selectAll('api_tokens')
      .select('accounts.name as account_name');
  }

  cachedToken(lookup: string): ApiToken | undefined {
    const cached = this.tokens.get(lookup);
    return cached && cached.marker === this.d.changeMarker() ? cached.token : undefined;
  }

  async findToken(lookup: string): Promise<ApiToken | undefined> {
    const cached = this.cachedToken(lookup);
    if (cached) return cached;
    // Read before the row, so a change committed while the query runs invalidates what it returns.
    const marker = this.d.changeMarker();
    const row = await this.tokenQuery().where('api_tokens.lookup', '=', lookup).executeTakeFirst();
    if (!row) {
      this.tokens.delete(lookup);
      return undefined;
    }
    const token = toApiToken(row);
    if (this.tokens.size >= 10_000) this.tokens.clear();
    this.tokens.set(lookup, { token, marker });
    return token;
  }

  async listTokens(): Promise<ApiToken[]> {
    const rows = await this.tokenQuery().orderBy('api_tokens.id').execute();
    return rows.map(toApiToken);
  }

  async revokeToken(id: string, now: number): Promise<boolean> {
    const revoked = await this.d.writeTransaction(async (trx) => {
      const result = await trx
        .updateTable('api_tokens')
        .set({ revoked_at: now })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      const changed = Number(result.numUpdatedRows) > 0;
      if (changed) await this.d.notifyTokensChanged(trx);
      return changed;
    });
    this.tokens.clear();
    return revoked;
  }

  async touchToken(id: string, now: number): Promise<void> {
    await this.d.db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', id).execute();
    for (const entry of this.tokens.values())
      if (entry.token.id === id) entry.token = { ...entry.token, lastUsedAt: now };
  }

  // --- the account callback ------------------------------------------------------------------

  async getCallback(accountId: string): Promise<Callback | undefined> {
    return this.d.db.selectFrom('callbacks').selectAll().where('account_id', '=', accountId).executeTakeFirst();
  }

  async putCallback(callback: Omit<Callback, 'created_at'>): Promise<void> {
    const { account_id, updated_at, ...settings } = callback;
    await this.d.db
      .insertInto('callbacks')
      .values({ ...callback, created_at: updated_at })
      .onConflict((oc) => oc.column('account_id').doUpdateSet({ ...settings, updated_at }))
      .execute();
  }

  // --- subscriptions -------------------------------------------------------------------------

  async createSubscription(subscription: Subscription): Promise<void> {
    try {
      await this.d.db.insertInto('subscriptions').values(subscription).execute();
    } catch (err) {
      if (this.d.isUniqueViolation(err)) throw duplicateSubscription();
      throw err;
    }
  }

  async getSubscription(accountId: string, id: string): Promise<Subscription | undefined> {
    return liveSubscription(this.d.db, accountId, id);
  }

  async listSubscriptions(accountId: string, filter: SubscriptionFilter): Promise<Page<Subscription>> {
    const rows = await this.d.db
      .selectFrom('subscriptions')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('deleted_at', 'is', null)
      .$if(filter.eventType !== undefined, (q) => q.where('event_type', '=', filter.eventType as string))
      .$if(filter.status !== undefined, (q) => q.where('status', '=', filter.status as Subscription['status']))
      .$if(filter.cursor !== undefined, (q) => q.where('id', '<', filter.cursor as string))
      .orderBy('id', 'desc')
      .limit(filter.limit + 1)
      .execute();
    return page(rows, filter.limit, (r) => r.id);
  }

  async updateSubscription(
    accountId: string,
    id: string,
    patch: SubscriptionPatch,
    now: number,
  ): Promise<Subscription | undefined> {
    try {
      return await this.d.writeTransaction(async (trx) => {
        const current = await liveSubscription(trx, accountId, id);
        if (!current) return undefined;
        const changes: Partial<Subscription> = { updated_at: now };
        if (patch.targetUrl !== undefined) changes.target_url = patch.targetUrl;
        if (patch.secretTokenSealed !== undefined) changes.secret_token_sealed = patch.secretTokenSealed;
        if (patch.status !== undefined && patch.status !== current.status) {
          changes.status = patch.status;
          if (patch.status === 'active') {
            changes.disabled_reason = null;
            changes.failing_since = null;
          }
        }
        await trx.updateTable('subscriptions').set(changes).where('id', '=', id).execute();
        if (changes.status === 'paused') {
          await trx
            .updateTable('deliveries')
            .set({ status: 'held', updated_at: now })
            .where('subscription_id', '=', id)
            .where('status', '=', 'pending')
            .execute();
        } else if (changes.status === 'active') {
          const released = await trx
            .updateTable('deliveries')
            .set({ status: 'pending', next_attempt_at: now, updated_at: now })
            .where('subscription_id', '=', id)
            .where('status', '=', 'held')
            .executeTakeFirst();
          if (Number(released.numUpdatedRows) > 0) {
            await this.d.notifyDue(trx);
            queueMicrotask(() => this.emitDue());
          }
        }
        return { ...current, ...changes };
      });
    } catch (err) {
      if (this.d.isUniqueViolation(err)) throw duplicateSubscription();
      throw err;
    }
  }

  async rotateSigningSecret(
    accountId: string,
    id: string,
    signingSecretSealed: string,
    previousValidUntil: number,
    now: number,
  ): Promise<Subscription | undefined> {
    return this.d.writeTransaction(async (trx) => {
      const current = await liveSubscription(trx, accountId, id);
      if (!current) return undefined;
      const changes = {
        signing_secret_sealed: signingSecretSealed,
        previous_secret_sealed: previousValidUntil > now ? current.signing_secret_sealed : null,
        previous_secret_expires_at: previousValidUntil > now ? previousValidUntil : null,
        updated_at: now,
      };
      await trx.updateTable('subscriptions').set(changes).where('id', '=', id).execute();
      return { ...current, ...changes };
    });
  }

  async deleteSubscription(accountId: string, id: string, now: number): Promise<boolean> {
    return this.d.writeTransaction(async (trx) => {
      const result = await trx
        .updateTable('subscriptions')
        .set({ deleted_at: now, updated_at: now })
        .where('id', '=', id)
        .where('account_id', '=', accountId)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) return false;
      await trx
        .updateTable('deliveries')
        .set({ status: 'cancelled', lease_owner: null, updated_at: now })
        .where('subscription_id', '=', id)
        .where('status', 'in', ['pending', 'held', 'sending'])
        .execute();
      return true;
    });
  }

  // --- events --------------------------------------------------------------------------------

  async publishEvents(requests: PublishRequest[], now: number): Promise<PublishResult[]> {
    return (await this.publishAndClaim(requests, now, undefined)).results;
  }

  async publishAndClaim(
    requests: PublishRequest[],
    now: number,
    claim: PublishClaim | undefined,
  ): Promise<PublishOutcome> {
    const { results, claimed, queued, queuedEvents } = await publishEvents(this.d, requests, now, claim, this.fanOut);
    for (const event of queuedEvents) this.events.set(event);
    // Deliveries handed off at publish need no wake-up; only those left in the queue do.
    if (queued > 0) this.emitDue();
    return { results, claimed };
  }

  async getEvent(accountId: string, id: string): Promise<EventRecord | undefined> {
    const row = await this.d.db
      .selectFrom('events')
      .selectAll()
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    return row ? eventRecordFromRow(row) : undefined;
  }

  async listEvents(accountId: string, filter: EventFilter): Promise<Page<EventRecord>> {
    const rows = await this.d.db
      .selectFrom('events')
      .selectAll()
      .where('account_id', '=', accountId)
      .$if(filter.eventType !== undefined, (q) => q.where('type', '=', filter.eventType as string))
      .$if(filter.since !== undefined, (q) => q.where('created_at', '>=', filter.since as number))
      .$if(filter.until !== undefined, (q) => q.where('created_at', '<', filter.until as number))
      .$if(filter.cursor !== undefined, (q) => q.where('id', '<', filter.cursor as string))
      .orderBy('id', 'desc')
      .limit(filter.limit + 1)
      .execute();
    return page(rows.map(eventRecordFromRow), filter.limit, (r) => r.id);
  }

  // --- deliveries and attempts ---------------------------------------------------------------

  async getDelivery(accountId: string, id: string): Promise<Delivery | undefined> {
    return this.d.db
      .selectFrom('deliveries')
      .selectAll()
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .executeTakeFirst();
  }

  async listDeliveries(accountId: string, filter: DeliveryFilter): Promise<Page<Delivery>> {
    const rows = await this.d.db
      .selectFrom('deliveries')
      .selectAll()
      .where('account_id', '=', accountId)
      .$if(filter.subscriptionId !== undefined, (q) => q.where('subscription_id', '=', filter.subscriptionId as string))
      .$if(filter.eventId !== undefined, (q) => q.where('event_id', '=', filter.eventId as string))
      .$if(filter.status !== undefined, (q) => q.where('status', '=', filter.status as Delivery['status']))
      .$if(filter.since !== undefined, (q) => q.where('created_at', '>=', filter.since as number))
      .$if(filter.until !== undefined, (q) => q.where('created_at', '<', filter.until as number))
      .$if(filter.cursor !== undefined, (q) => q.where('id', '<', filter.cursor as string))
      .orderBy('id', 'desc')
      .limit(filter.limit + 1)
      .execute();
    return page(rows, filter.limit, (r) => r.id);
  }

  async listAttempts(deliveryIds: string[]): Promise<Attempt[]> {
    const out: Attempt[] = [];
    for (const ids of chunk(deliveryIds, 500)) {
      const rows = await this.d.db
        .selectFrom('attempts')
        .selectAll()
        .where('delivery_id', 'in', ids)
        .orderBy('delivery_id')
        .orderBy('number')
        .execute();
      out.push(...rows);
    }
    return out;
  }

  async requestRedelivery(
    accountId: string,
    id: string,
    now: number,
  ): Promise<Delivery | 'in_flight' | 'cancelled' | undefined> {
    const outcome = await this.d.writeTransaction(async (trx) => {
      const current = await trx
        .selectFrom('deliveries')
        .selectAll()
        .where('id', '=', id)
        .where('account_id', '=', accountId)
        .$if(this.d.name === 'postgres', (q) => q.forUpdate())
        .executeTakeFirst();
      if (!current) return undefined;
      if (current.status === 'sending') return 'in_flight' as const;
      if (current.status === 'cancelled') return 'cancelled' as const;
      const manual = current.status === 'pending' ? MANUAL_NUDGE : MANUAL_ONE_OFF;
      const changes = { status: 'pending' as const, manual, next_attempt_at: now, updated_at: now };
      await trx.updateTable('deliveries').set(changes).where('id', '=', id).execute();
      await this.d.notifyDue(trx);
      return { ...current, ...changes };
    });
    if (typeof outcome === 'object') this.emitDue();
    return outcome;
  }

  async replayFailed(
    accountId: string,
    subscriptionId: string,
    since: number,
    until: number,
    now: number,
  ): Promise<number> {
    const count = await this.d.writeTransaction(async (trx) => {
      const result = await trx
        .updateTable('deliveries')
        .set((eb) => ({
          status: 'pending',
          next_attempt_at: now,
          round_start: eb.ref('attempt_count'),
          manual: 0,
          updated_at: now,
        }))
        .where('account_id', '=', accountId)
        .where('subscription_id', '=', subscriptionId)
        .where('status', '=', 'failed')
        .where('created_at', '>=', since)
        .where('created_at', '<', until)
        .executeTakeFirst();
      const n = Number(result.numUpdatedRows);
      if (n > 0) await this.d.notifyDue(trx);
      return n;
    });
    if (count > 0) this.emitDue();
    return count;
  }

  async resealSecrets(reseal: (sealed: string) => string): Promise<number> {
    return this.d.writeTransaction(async (trx) => {
      let count = 0;
      const again = (value: string | null) => {
        if (value === null) return null;
        count++;
        return reseal(value);
      };
      const callbacks = await trx
        .selectFrom('callbacks')
        .select(['account_id', 'password_sealed', 'bearer_token_sealed'])
        .execute();
      for (const cb of callbacks) {
        await trx
          .updateTable('callbacks')
          .set({ password_sealed: again(cb.password_sealed), bearer_token_sealed: again(cb.bearer_token_sealed) })
          .where('account_id', '=', cb.account_id)
          .execute();
      }
      const subs = await trx
        .selectFrom('subscriptions')
        .select(['id', 'secret_token_sealed', 'signing_secret_sealed', 'previous_secret_sealed'])
        .execute();
      for (const sub of subs) {
        await trx
          .updateTable('subscriptions')
          .set({
            secret_token_sealed: again(sub.secret_token_sealed),
            signing_secret_sealed: again(sub.signing_secret_sealed) as string,
            previous_secret_sealed: again(sub.previous_secret_sealed),
          })
          .where('id', '=', sub.id)
          .execute();
      }
      return count;
    });
  }

  // --- the queue -----------------------------------------------------------------------------

  claimDueDeliveries(owner: string, limit: number, now: number, leaseMs: number): Promise<ClaimedDelivery[]> {
    return claimDueDeliveries(this.d, this.events, owner, limit, now, leaseMs);
  }

  recordAttempts(owner: string, results: AttemptResult[], now: number, settings: QueueSettings): Promise<void> {
    return recordAttempts(this.d, owner, results, now, settings);
  }

  releaseClaims(owner: string, deliveryIds: string[] | 'all', now: number): Promise<number> {
    return releaseClaims(this.d, owner, deliveryIds, now);
  }

  async nextDueAt(): Promise<number | undefined> {
    const row = await this.d.db
      .selectFrom('deliveries')
      .select((eb) => eb.fn.min('next_attempt_at').as('due'))
      .where(CLAIMABLE)
      .executeTakeFirst();
    const due = row?.due;
    return due === null || due === undefined ? undefined : Number(due);
  }
}

/** The account's subscription with this id, unless deleted: the one query every route starts from. */
function liveSubscription(db: Kysely<Database>, accountId: string, id: string): Promise<Subscription | undefined> {
  return db
    .selectFrom('subscriptions')
    .selectAll()
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
}

function duplicateSubscription(): CountersignError {
  return new CountersignError(
    'subscription_exists',
    'a subscription with this target_url and event_type already exists',
  );
}

function page<T>(rows: T[], limit: number, idOf: (row: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, limit);
  return { items, nextCursor: idOf(items[items.length - 1] as T) };
}

function toApiToken(row: ApiTokensTable & { account_name: string }): ApiToken {
  return {
    id: row.id,
    accountId: row.account_id,
    accountName: row.account_name,
    scopes: row.scopes.split(' ').filter(Boolean),
    hash: row.hash,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  };
}
