// The Store over Kysely, for both dialects. Plain CRUD lives here; the queue operations (publish,
// claim, record, release) live in queue/, one file each.

import type { AuditEntry } from '../domain/audit-chain.js';
import { ERASED_DATA } from '../domain/erasure.js';
import { newId } from '../domain/ids.js';
import { isLegacySealed, type SealContext } from '../domain/secret-box.js';
import { planRotation } from '../domain/secret-rotation.js';

import * as overview from './account-overview.js';
import type { StoreDialect } from './dialect.js';
import * as documents from './documents.js';
import { DEFAULT_ERASURE_SETTINGS, eraseSubject } from './erasure.js';
import { DEFAULT_FILE_REBUILD_EVERY_MS, FileRebuilds } from './file-rebuilds.js';
import { GenerationCache } from './generation-cache.js';
import * as listen from './listen-sessions.js';
import { migrateToLatest } from './migrator.js';
import * as nodes from './nodes.js';
import { chunk } from './queue/chunk.js';
import { type CircuitRow, circuitOf, circuitsOf, makeProbeDue, releaseProbes, resetCircuit } from './queue/circuits.js';
import { claimListenSession, claimRound, type EventCache, MANUAL_NUDGE, MANUAL_ONE_OFF } from './queue/claim.js';
import { nextDueAt } from './queue/endpoints.js';
import { eventRecordFromRow, FanOutCache, publishEvents } from './queue/publish.js';
import * as purge from './queue/purge.js';
import { recordAttempts } from './queue/record-attempts.js';
import { deliverEvent, recoverMissed } from './queue/recover.js';
import { releaseClaims } from './queue/release.js';
import { renewLeases } from './queue/renew.js';
import { queueStats } from './queue/stats.js';
import { refuseAtQuota } from './quota.js';
import { anyLegacySealed, anySealedSecret, type Reseal, resealAll } from './reseal.js';
import type { ApiTokensTable, TokenKind } from './schema.js';
import type {
  Account,
  ApiToken,
  Attempt,
  AttemptMinute,
  AttemptResult,
  Callback,
  CallbackSettings,
  ClaimedDelivery,
  ClaimRequest,
  ClaimRound,
  CreateDocumentInput,
  DeliverOutcome,
  Delivery,
  DeliveryFilter,
  DocumentFilter,
  DocumentRecord,
  DocumentStep,
  EndpointCircuit,
  ErasureOutcome,
  ErasureSettings,
  ErasureSubject,
  EventFilter,
  EventRecord,
  NodeRecord,
  OpenListenSession,
  Page,
  PublishClaim,
  PublishOutcome,
  PublishRequest,
  PublishResult,
  PurgeBatch,
  PurgeCursor,
  QueueSettings,
  QueueStats,
  RecordOutcome,
  RecoverResult,
  StepContext,
  Store,
  Subscription,
  SubscriptionFilter,
  SubscriptionPatch,
  SubscriptionsNeedingAttention,
} from './store.js';
import * as subscriptions from './subscriptions.js';
import { tooManySecrets } from './subscriptions.js';

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

export interface OpenStoreOptions {
  migrate?: boolean;
  /** SQLite: the shortest time between two file rebuilds owed by erasures (file-rebuilds.ts). */
  fileRebuildEveryMs?: number;
  /** Told of problems found in the background (a file rebuild that failed). */
  warn?: (message: string) => void;
}

export async function openStore(dialect: StoreDialect, options: OpenStoreOptions = {}): Promise<KyselyStore> {
  if (options.migrate !== false) await migrateToLatest(dialect);
  const store = new KyselyStore(
    dialect,
    new FileRebuilds(dialect, options.fileRebuildEveryMs ?? DEFAULT_FILE_REBUILD_EVERY_MS, options.warn),
  );
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
  /** Where the dispatcher's last claim round stopped walking the endpoints. */
  private readonly claimCursor = { after: -1 };

  constructor(
    private readonly d: StoreDialect,
    private readonly rebuilds: FileRebuilds,
  ) {}

  get dialect() {
    return this.d.name;
  }

  async startListening(): Promise<void> {
    this.stopListening = await this.d.listenDue(() => this.emitDue());
    await this.rebuilds.resume();
  }

  async ping(): Promise<void> {
    await this.d.db.selectNoFrom((eb) => eb.lit(1).as('one')).execute();
  }

  async close(): Promise<void> {
    await this.rebuilds.close();
    await this.stopListening?.();
    await this.d.close();
  }

  onDue(listener: () => void): () => void {
    this.dueListeners.add(listener);
    return () => this.dueListeners.delete(listener);
  }

  // --- documents (issue 18) ------------------------------------------------------------------

  createDocument(input: CreateDocumentInput, context: Omit<StepContext, 'auditUrl'>): Promise<DocumentRecord> {
    return documents.createDocument(this.d, input, context);
  }

  getDocument(accountId: string | undefined, id: string): Promise<DocumentRecord | undefined> {
    return documents.getDocument(this.d.db, accountId, id);
  }

  revokeAuditLinks(accountId: string, id: string, now: number): Promise<DocumentRecord | undefined> {
    return documents.revokeAuditLinks(this.d, accountId, id, now);
  }

  listDocuments(accountId: string, filter: DocumentFilter): Promise<Page<DocumentRecord>> {
    return documents.listDocuments(this.d.db, accountId, filter);
  }

  async applyDocumentStep(
    accountId: string,
    documentId: string,
    step: DocumentStep,
    context: StepContext,
  ): Promise<{ document: DocumentRecord; events: EventRecord[] }> {
    const { document, events, queued } = await documents.applyDocumentStep(
      this.d,
      accountId,
      documentId,
      step,
      context,
    );
    if (queued > 0) this.emitDue();
    return { document, events };
  }

  auditEntries(documentId: string): Promise<AuditEntry[]> {
    return documents.auditEntries(this.d.db, documentId);
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

  async findAccount(name: string): Promise<Account | undefined> {
    const row = await this.d.db.selectFrom('accounts').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? { id: row.id, name: row.name, createdAt: row.created_at } : undefined;
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
    kind?: TokenKind;
    maxLive?: number;
  }): Promise<{ id: string }> {
    const id = newId('tok');
    const kind = input.kind ?? 'api';
    const { maxLive } = input;
    // With a quota: counted and inserted in one transaction.
    await this.d.writeTransaction(async (trx) => {
      if (maxLive !== undefined) {
        const live = async () => {
          const row = await trx
            .selectFrom('api_tokens')
            .select((eb) => eb.fn.countAll<number | string>().as('n'))
            .where('account_id', '=', input.accountId)
            .where('kind', '=', kind)
            .where('revoked_at', 'is', null)
            .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', input.now)]))
            .executeTakeFirst();
          return Number(row?.n ?? 0);
        };
        await refuseAtQuota(
          trx,
          this.d,
          input.accountId,
          maxLive,
          live,
          `this account has ${maxLive} portal sessions open, as many as it may (COUNTERSIGN_MAX_PORTAL_SESSIONS); end one (DELETE /v1/portal/sessions/:id) or let one expire`,
        );
      }
      await trx
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
          kind,
        })
        .execute();
    });
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

  revokeToken(id: string, now: number): Promise<boolean> {
    return this.revoke(id, now, undefined);
  }

  revokePortalToken(accountId: string, tokenId: string, now: number): Promise<boolean> {
    return this.revoke(tokenId, now, { accountId, kind: 'portal' });
  }

  /** Revokes and tells every process (NOTIFY on PostgreSQL; SQLite's data_version moves by itself). */
  private async revoke(id: string, now: number, only: { accountId: string; kind: TokenKind } | undefined) {
    const revoked = await this.d.writeTransaction(async (trx) => {
      let update = trx.updateTable('api_tokens').set({ revoked_at: now }).where('id', '=', id);
      if (only) update = update.where('account_id', '=', only.accountId).where('kind', '=', only.kind);
      const result = await update.where('revoked_at', 'is', null).executeTakeFirst();
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

  async putCallback(callback: CallbackSettings): Promise<void> {
    const { account_id, updated_at, ...settings } = callback;
    const released = await this.d.writeTransaction(async (trx) => {
      await trx
        .insertInto('callbacks')
        .values({ ...callback, signing_secret_sealed: null, retired_secrets: '[]', created_at: updated_at })
        .onConflict((oc) => oc.column('account_id').doUpdateSet({ ...settings, updated_at }))
        .execute();
      // Registering again (a new URL, new credentials) starts the callback's circuit closed.
      const n = await resetCircuit(trx, account_id, updated_at);
      if (n > 0) await this.d.notifyDue(trx);
      return n;
    });
    if (released > 0) this.emitDue();
  }

  async rotateCallbackSecret(
    accountId: string,
    signingSecretSealed: string,
    previousValidUntil: number,
    now: number,
  ): Promise<Callback> {
    return this.d.writeTransaction(async (trx) => {
      const current = await trx
        .selectFrom('callbacks')
        .selectAll()
        .where('account_id', '=', accountId)
        .executeTakeFirst();
      const plan = planRotation(
        current?.signing_secret_sealed ?? null,
        current?.retired_secrets ?? '[]',
        previousValidUntil,
        now,
      );
      if (!plan.ok) throw tooManySecrets(plan.signing, plan.nextExpiry, now);
      const changes = {
        signing_secret_sealed: signingSecretSealed,
        retired_secrets: plan.retiredJson,
        updated_at: now,
      };
      if (current) {
        await trx.updateTable('callbacks').set(changes).where('account_id', '=', accountId).execute();
        return { ...current, ...changes };
      }
      // No callback registered yet: a disabled one holds the secret until a URL is registered.
      const row: Callback = {
        account_id: accountId,
        url: '',
        auth_type: 'None',
        username: null,
        password_sealed: null,
        bearer_token_sealed: null,
        ...changes,
        created_at: now,
      };
      await trx.insertInto('callbacks').values(row).execute();
      return row;
    });
  }

  // --- subscriptions -------------------------------------------------------------------------

  createSubscription(subscription: Subscription, maxPerAccount?: number): Promise<void> {
    return subscriptions.createSubscription(this.d, subscription, maxPerAccount);
  }

  getSubscription(accountId: string, id: string): Promise<Subscription | undefined> {
    return subscriptions.liveSubscription(this.d.db, accountId, id);
  }

  async subscriptionsById(accountId: string, ids: string[]): Promise<Subscription[]> {
    const out: Subscription[] = [];
    for (const batch of chunk(ids, 500)) {
      out.push(
        ...(await this.d.db
          .selectFrom('subscriptions')
          .selectAll()
          .where('account_id', '=', accountId)
          .where('id', 'in', batch)
          .execute()),
      );
    }
    return out;
  }

  listSubscriptions(accountId: string, filter: SubscriptionFilter): Promise<Page<Subscription>> {
    return subscriptions.listSubscriptions(this.d.db, accountId, filter);
  }

  updateSubscription(
    accountId: string,
    id: string,
    patch: SubscriptionPatch,
    now: number,
  ): Promise<Subscription | undefined> {
    return subscriptions.updateSubscription(this.d, accountId, id, patch, now, () => this.emitDue());
  }

  rotateSigningSecret(
    accountId: string,
    id: string,
    signingSecretSealed: string,
    previousValidUntil: number,
    now: number,
  ): Promise<Subscription | undefined> {
    return subscriptions.rotateSigningSecret(this.d, accountId, id, signingSecretSealed, previousValidUntil, now);
  }

  deleteSubscription(accountId: string, id: string, now: number): Promise<boolean> {
    return subscriptions.deleteSubscription(this.d, accountId, id, now);
  }

  // --- events --------------------------------------------------------------------------------

  async publishEvents(requests: PublishRequest[], now: number): Promise<PublishResult[]> {
    return (await this.publishAndClaim(requests, now, undefined)).results;
  }

  async publishAndClaim(
    requests: PublishRequest[],
    now: number,
    claim: PublishClaim | undefined,
    options: { allOrNothing?: boolean; maxDeliveries?: number } = {},
  ): Promise<PublishOutcome> {
    const { results, claimed, wake, queuedEvents } = await publishEvents(
      this.d,
      requests,
      now,
      claim,
      this.fanOut,
      options.allOrNothing === true,
      options.maxDeliveries,
    );
    for (const event of queuedEvents) this.events.set(event);
    // Deliveries handed off at publish need no wake-up; only those left in the queue do, unless
    // they were left because the dispatcher had no room for their endpoint (it is told, and claims
    // again once it has). Other processes are woken by the publish's NOTIFY either way.
    if (wake) this.emitDue();
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
      .$if(filter.documentId !== undefined, (q) => q.where('document_id', '=', filter.documentId as string))
      .$if(filter.includeTests !== true, (q) => q.where('test', '=', 0))
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
      .$if(filter.documentId !== undefined, (q) =>
        q.where('event_id', 'in', (sub) =>
          sub
            .selectFrom('events')
            .select('events.id')
            .where('events.account_id', '=', accountId)
            .where('events.document_id', '=', filter.documentId as string),
        ),
      )
      .$if(filter.target === 'callback', (q) => q.where('subscription_id', 'is', null))
      .$if(filter.target === 'subscription', (q) => q.where('subscription_id', 'is not', null).where('listen', '=', 0))
      .$if(filter.target === 'listen', (q) => q.where('listen', '=', 1))
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

  deliveryCountsSince(accountId: string, since: number, cap: number): Promise<overview.DeliveryCounts> {
    return overview.deliveryCountsSince(this.d.db, accountId, since, cap);
  }

  attemptsPerMinute(accountId: string, since: number, until: number): Promise<AttemptMinute[]> {
    return overview.attemptsPerMinute(this.d.db, accountId, since, until);
  }

  subscriptionsNeedingAttention(accountId: string, limit: number): Promise<SubscriptionsNeedingAttention> {
    return overview.subscriptionsNeedingAttention(this.d.db, accountId, limit);
  }

  latestDeliveries(accountId: string, subscriptionIds: string[]): Promise<Map<string, Delivery>> {
    return overview.latestDeliveries(this.d.db, accountId, subscriptionIds);
  }

  async requestRedelivery(
    accountId: string,
    id: string,
    now: number,
  ): Promise<Delivery | 'in_flight' | 'cancelled' | 'waiting' | undefined> {
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
      if (current.status === 'waiting') return 'waiting' as const;
      // Still in its retry schedule (pending, or postponed behind an open circuit): one attempt now,
      // and the schedule goes on after it. Otherwise one attempt, with no retries.
      const manual = current.status === 'pending' || current.status === 'postponed' ? MANUAL_NUDGE : MANUAL_ONE_OFF;
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

  async recoverMissed(
    accountId: string,
    subscriptionId: string,
    since: number,
    until: number,
    now: number,
    limit: number,
  ): Promise<RecoverResult | undefined> {
    const result = await recoverMissed(this.d, accountId, subscriptionId, since, until, now, limit);
    if (result && result.recovered > 0) this.emitDue();
    return result;
  }

  async deliverEvent(accountId: string, eventId: string, subscriptionId: string, now: number): Promise<DeliverOutcome> {
    const outcome = await deliverEvent(this.d, accountId, eventId, subscriptionId, now);
    if (outcome.ok && outcome.delivery.status === 'pending') this.emitDue();
    return outcome;
  }

  // --- secrets at rest, settings and the processes using the database ------------------------

  resealSecrets(reseal: Reseal): Promise<number> {
    return this.d.writeTransaction((trx) => resealAll(trx, reseal));
  }

  async upgradeLegacySealed(reseal: Reseal): Promise<number> {
    if (!(await anyLegacySealed(this.d.db))) return 0;
    let upgraded = 0;
    await this.d.writeTransaction((trx) =>
      resealAll(trx, (sealed, context) => {
        if (!isLegacySealed(sealed)) return sealed;
        upgraded++;
        return reseal(sealed, context);
      }),
    );
    return upgraded;
  }

  async resealSecretsUnlessInUse(
    freshSince: number,
    reseal: Reseal,
  ): Promise<{ ok: true; count: number } | { ok: false; live: NodeRecord[] }> {
    const outcome = await nodes.unlessInUse(this.d, freshSince, (trx) => resealAll(trx, reseal));
    return outcome.ok ? { ok: true, count: outcome.value } : outcome;
  }

  anySealedSecret(): Promise<{ sealed: string; context: SealContext } | undefined> {
    return anySealedSecret(this.d.db);
  }

  getSetting(key: string): Promise<string | undefined> {
    return nodes.getSetting(this.d.db, key);
  }

  putSettingIfAbsent(key: string, value: string): Promise<string> {
    return nodes.putSettingIfAbsent(this.d, key, value);
  }

  registerNode(node: NodeRecord): Promise<void> {
    return nodes.registerNode(this.d, node);
  }

  heartbeatNode(id: string, now: number): Promise<boolean> {
    return nodes.heartbeatNode(this.d, id, now);
  }

  removeNode(id: string): Promise<void> {
    return nodes.removeNode(this.d.db, id);
  }

  liveNodes(freshSince: number): Promise<NodeRecord[]> {
    return nodes.liveNodes(this.d.db, freshSince);
  }

  // --- the queue -----------------------------------------------------------------------------

  claimListenDeliveries(
    owner: string,
    sessionId: string,
    limit: number,
    now: number,
    leaseMs: number,
  ): Promise<ClaimedDelivery[]> {
    return claimListenSession(this.d, this.events, owner, sessionId, limit, now, leaseMs);
  }

  openListenSession(input: OpenListenSession): Promise<Subscription> {
    return listen.openListenSession(this.d, input);
  }

  getListenSession(accountId: string, id: string): Promise<Subscription | undefined> {
    return listen.getListenSession(this.d, accountId, id);
  }

  endListenSession(accountId: string, id: string, now: number): Promise<number | undefined> {
    return listen.endListenSession(this.d, accountId, id, now);
  }

  touchListenSessions(ids: string[], now: number): Promise<void> {
    return listen.touchListenSessions(this.d, ids, now);
  }

  endIdleListenSessions(
    before: number,
    now: number,
    reason: string,
  ): Promise<{ id: string; accountId: string; cancelled: number }[]> {
    return listen.endIdleListenSessions(this.d, before, now, reason);
  }

  claimRound(owner: string, limit: number, now: number, leaseMs: number, request: ClaimRequest): Promise<ClaimRound> {
    return claimRound(this.d, this.events, owner, limit, now, leaseMs, request, this.claimCursor);
  }

  async claimDueDeliveries(owner: string, limit: number, now: number, leaseMs: number): Promise<ClaimedDelivery[]> {
    const round = await this.claimRound(owner, limit, now, leaseMs, { probeTimeoutMs: leaseMs });
    return round.deliveries;
  }

  async recordAttempts(
    owner: string,
    results: AttemptResult[],
    now: number,
    settings: QueueSettings,
  ): Promise<RecordOutcome> {
    const outcome = await recordAttempts(this.d, owner, results, now, settings);
    if (outcome.queued > 0) this.emitDue();
    return outcome;
  }

  releaseClaims(owner: string, deliveryIds: string[] | 'all', now: number): Promise<number> {
    return releaseClaims(this.d, owner, deliveryIds, now);
  }

  renewLeases(owner: string, deliveryIds: string[], now: number, leaseMs: number): Promise<number> {
    return renewLeases(this.d, owner, deliveryIds, now, leaseMs);
  }

  queueStats(now: number): Promise<QueueStats> {
    return queueStats(this.d, now);
  }

  nextDueAt(after?: number): Promise<number | undefined> {
    return nextDueAt(this.d, after);
  }

  async circuitsOf(accountId: string, endpoints: string[]): Promise<Map<string, EndpointCircuit>> {
    const rows = await circuitsOf(this.d.db, endpoints);
    const out = new Map<string, EndpointCircuit>();
    for (const [key, row] of rows) if (row.account_id === accountId) out.set(key, endpointCircuit(row));
    return out;
  }

  async probeNow(
    accountId: string,
    endpoint: string,
    now: number,
  ): Promise<{ circuit: EndpointCircuit; probing: boolean } | undefined> {
    // One transaction: the window ends and a probe is made due while the circuit's row is held, so
    // no dispatcher's releaseProbes can move the endpoint's deliveries between the two.
    const moved = await this.d.writeTransaction(async (trx) => {
      const row = await trx
        .selectFrom('endpoint_circuits')
        .selectAll()
        .where('endpoint', '=', endpoint)
        .where('account_id', '=', accountId)
        .$if(this.d.name === 'postgres', (q) => q.forUpdate())
        .executeTakeFirst();
      if (row?.state !== 'open') return undefined;
      const changed: CircuitRow = { ...row, retry_at: now, updated_at: now };
      await trx
        .updateTable('endpoint_circuits')
        .set({ retry_at: now, updated_at: now })
        .where('endpoint', '=', endpoint)
        .execute();
      const probe = await makeProbeDue(this.d, trx, endpoint, now);
      return { circuit: changed, probing: probe !== 'none' };
    });
    if (!moved) return undefined;
    this.emitDue();
    return { circuit: endpointCircuit(moved.circuit), probing: moved.probing };
  }

  releaseProbes(now: number): Promise<{ released: number; nextAt: number | undefined }> {
    return releaseProbes(this.d, now);
  }

  // --- retention and erasure -----------------------------------------------------------------

  purgeOlderThan(cutoff: number, limit: number, after?: PurgeCursor): Promise<PurgeBatch> {
    return purge.purgeOlderThan(this.d, cutoff, limit, after);
  }

  countPurgeable(cutoff: number, limit: number, after?: PurgeCursor): Promise<PurgeBatch> {
    return purge.countPurgeable(this.d, cutoff, limit, after);
  }

  countEventsOlderThan(cutoff: number): Promise<number> {
    return purge.countEventsOlderThan(this.d, cutoff);
  }

  async eraseSubject(
    accountId: string,
    subject: ErasureSubject,
    now: number,
    settings: Partial<ErasureSettings> = {},
  ): Promise<ErasureOutcome> {
    const { outcome, erasedEventIds, released } = await eraseSubject(
      this.d,
      accountId,
      subject,
      now,
      {
        ...DEFAULT_ERASURE_SETTINGS,
        ...settings,
      },
      this.rebuilds,
    );
    // The recent-event cache would otherwise hand a later claim (a redelivery) the data as it was.
    for (const id of erasedEventIds) {
      const cached = this.events.get(id);
      if (cached) this.events.set({ ...cached, dataJson: ERASED_DATA, documentId: null });
    }
    if (released > 0) this.emitDue();
    return outcome;
  }
}

function page<T>(rows: T[], limit: number, idOf: (row: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, limit);
  return { items, nextCursor: idOf(items[items.length - 1] as T) };
}

function endpointCircuit(row: CircuitRow): EndpointCircuit {
  return { ...circuitOf(row), endpoint: row.endpoint, accountId: row.account_id, updatedAt: Number(row.updated_at) };
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
    kind: row.kind,
  };
}
