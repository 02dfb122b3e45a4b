// The Store: the only way the rest of countersign reaches the database. One implementation over
// Kysely serves both dialects (kysely-store.ts); the queue operations each live in their own file
// under queue/ with their SQL in plain sight.

import type { AuditEntry } from '../domain/audit-chain.js';
import type { Circuit, CircuitSettings, CircuitVerdict } from '../domain/circuit.js';
import type { ErasureSubject } from '../domain/erasure.js';
import type { SealContext } from '../domain/secret-box.js';
import type { DeliveryCounts } from './account-overview.js';
import type { DialectName } from './dialect.js';
import type { OpenListenSession } from './listen-sessions.js';
import type { Reseal } from './reseal.js';
import type {
  AttemptsTable,
  AttemptTrigger,
  CallbacksTable,
  DeliveriesTable,
  DeliveryStatus,
  DocumentStatus,
  SignerStatus,
  SubscriptionOrdering,
  SubscriptionStatus,
  SubscriptionsTable,
  TokenKind,
} from './schema.js';

export type { DeliveryStatus, OpenListenSession, TokenKind };

export interface Account {
  id: string;
  name: string;
  createdAt: number;
}

export interface ApiToken {
  id: string;
  accountId: string;
  accountName: string;
  scopes: string[];
  hash: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
  kind: TokenKind;
}

export type Callback = CallbacksTable;
/** What PUT /api/sign/v1/callback/register sets; the signing secret is rotated on its own. */
export type CallbackSettings = Omit<CallbacksTable, 'created_at' | 'signing_secret_sealed' | 'retired_secrets'>;
export type Subscription = SubscriptionsTable;
export type Delivery = DeliveriesTable;
export type Attempt = AttemptsTable;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface SubscriptionFilter {
  limit: number;
  cursor?: string;
  eventType?: string;
  status?: SubscriptionStatus;
}

export interface SubscriptionPatch {
  targetUrl?: string;
  eventTypes?: string[];
  status?: 'active' | 'paused';
  /** null removes the secret_token. */
  secretTokenSealed?: string | null;
  /** null removes the limit. */
  rateLimitPerSecond?: number | null;
  ordering?: SubscriptionOrdering;
}

export interface EventRecord {
  id: string;
  accountId: string;
  type: string;
  dataJson: string;
  occurredAt: number;
  createdAt: number;
  deliveryCount: number;
  /** A test event: marked in its payload, kept out of lists unless asked for. */
  test: boolean;
  documentId: string | null;
  /** Made by the documents lifecycle: its payload says `"source":"lifecycle"`. */
  source?: 'lifecycle';
}

export interface EventFilter {
  limit: number;
  cursor?: string;
  eventType?: string;
  documentId?: string;
  since?: number;
  until?: number;
  /** Test events are left out unless this is set. */
  includeTests?: boolean;
}

export interface DeliveryFilter {
  limit: number;
  cursor?: string;
  subscriptionId?: string;
  eventId?: string;
  documentId?: string;
  /** Only deliveries to subscriptions, to the account callback, or to listen sessions. */
  target?: 'subscription' | 'callback' | 'listen';
  status?: DeliveryStatus;
  since?: number;
  until?: number;
}

export interface PublishRequest {
  accountId: string;
  type: string;
  dataJson: string;
  occurredAt: number;
  /** data.document_id, kept beside the event for the delivery log's filter. */
  documentId?: string;
  /** A test event (only with onlySubscriptionId). */
  test?: boolean;
  idempotencyKey?: string;
  /** Hash of the request body: a reused idempotency key with another body is refused. */
  requestHash?: string;
  /** Deliver to this one subscription only (test events), instead of fanning out. */
  onlySubscriptionId?: string;
  /** Fan out to every subscription of the type but this one (an operational event about it). */
  excludeSubscriptionId?: string;
  /**
   * Made by the documents lifecycle. Any other request naming one of the account's lifecycle
   * documents in documentId is refused (`lifecycle_document`): only the lifecycle speaks for them.
   */
  source?: 'lifecycle';
}

export type PublishResult =
  | { ok: true; event: EventRecord; replayed: boolean }
  | { ok: false; reason: 'idempotency_key_reused' | 'lifecycle_document' };

/** An all-or-nothing publish refused for one of its requests: nothing of it was stored. */
export class BatchRefusedError extends Error {
  constructor(
    /** The first refused request's index in the batch (for too_many_deliveries, the first past the limit). */
    readonly index: number,
    readonly reason: 'idempotency_key_reused' | 'lifecycle_document' | 'too_many_deliveries',
    /** For too_many_deliveries: how many deliveries the whole batch would have made. */
    readonly deliveries = 0,
  ) {
    super(`request ${index} of the batch was refused: ${reason}`);
  }
}

/**
 * Direct hand-off at publish: a dispatcher in the publishing process takes up to `limit` of the
 * batch's new deliveries under its lease in the same transaction, so they skip the claim round
 * trip. Anything beyond the limit is queued as usual.
 */
export interface PublishClaim {
  owner: string;
  leaseMs: number;
  limit: number;
  /** How many more deliveries of this endpoint (subscription id, or account id for the callback) it takes. */
  room?: (endpoint: string) => number;
  /** Told of each endpoint a delivery was left queued for because it had no room. */
  roomless?: (endpoint: string) => void;
}

export interface PublishOutcome {
  results: PublishResult[];
  /** The deliveries taken under `claim`, ready to send. */
  claimed: ClaimedDelivery[];
}

/** A claimed delivery with everything the sender needs, loaded in batch. */
export interface ClaimedDelivery {
  id: string;
  eventId: string;
  accountId: string;
  subscriptionId: string | null;
  /** The number of this attempt (1-based, across all rounds). */
  attempt: number;
  /** Attempts already made in the current round, before this one. */
  attemptsBefore: number;
  trigger: AttemptTrigger;
  /** A manual attempt on a finished delivery: exactly one attempt, no retries after it. */
  oneOff: boolean;
  event: EventRecord;
  target: DeliveryTarget;
  /** Set when this claim took over a lease that ran out: the process that held it. */
  takenOverFrom?: string;
  /** A throttled subscription's send slot (epoch ms): not to be sent before it. */
  notBefore?: number;
  /** Sent as its endpoint's circuit probe: the circuit is half-open until its answer. */
  probe?: boolean;
}

export type DeliveryTarget =
  | {
      kind: 'subscription';
      url: string;
      secretTokenSealed: string | null;
      signingSecretsSealed: string[];
    }
  | {
      kind: 'callback';
      url: string;
      authType: 'Basic' | 'Bearer' | 'None';
      username: string | null;
      passwordSealed: string | null;
      bearerTokenSealed: string | null;
      /** The account's callback signing secrets in use (none until one is made). */
      signingSecretsSealed: string[];
    };

export type AttemptOutcome = 'delivered' | 'retry' | 'failed' | 'gone';

export interface AttemptResult {
  deliveryId: string;
  /** The delivery's account: the per-minute figures are kept per account. */
  accountId: string;
  subscriptionId: string | null;
  attempt: number;
  trigger: AttemptTrigger;
  startedAt: number;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseExcerpt: string | null;
  /** What was sent: the URL, and the headers as JSON with Authorization masked (null if nothing was sent). */
  requestUrl: string | null;
  requestHeaders: string | null;
  /** The answer's headers as JSON, when there was an answer. */
  responseHeaders: string | null;
  outcome: AttemptOutcome;
  /** For `retry`: when the next attempt is due. */
  nextAttemptAt?: number;
  /** What the attempt says about its endpoint, for its circuit breaker (none: nothing, as `neutral`). */
  verdict?: CircuitVerdict;
}

export interface QueueSettings {
  /** Disable a subscription whose attempts have all failed for this long. */
  disableAfterFailingMs: number;
  /** The endpoints' circuit breakers; none: verdicts move no circuit. */
  circuit?: CircuitSettings;
}

/** An endpoint's circuit breaker as stored: the endpoint is a subscription id, or an account id for its callback. */
export interface EndpointCircuit extends Circuit {
  endpoint: string;
  accountId: string;
  updatedAt: number;
}

/** How a dispatcher claims (claimRound). */
export interface ClaimRequest {
  /** How many more deliveries of this endpoint the dispatcher takes now (none: as many as fit). */
  room?: (endpoint: string) => number;
  /** How long a circuit's probe may go unanswered before another may be sent. */
  probeTimeoutMs: number;
}

/** What one claim round took, and whether another might find more. */
export interface ClaimRound {
  deliveries: ClaimedDelivery[];
  /** Endpoints that gave all they were asked for: the queue may hold more of theirs. */
  full: string[];
  /** The round could not serve every endpoint with due deliveries: another round may find more. */
  limited: boolean;
}

/** What recording a batch of attempts changed beyond the deliveries themselves. */
export interface RecordOutcome {
  /** Subscriptions this batch disabled, and why. */
  disabled: { id: string; accountId: string; targetUrl: string; reason: string }[];
  /** Circuits this batch opened, opened again after a failed probe, or closed. */
  circuits?: { endpoint: string; accountId: string; transition: 'opened' | 'reopened' | 'closed'; circuit: Circuit }[];
  /** Deliveries it made due: the next of an ordered document, and those of operational events. */
  queued: number;
}

export interface RecoverResult {
  /** Deliveries made. */
  recovered: number;
  /** Set when the window held more than one call makes: call again from this time (created_at, ms). */
  continueFrom: number | undefined;
}

export type DeliverOutcome =
  | { ok: true; delivery: Delivery }
  | { ok: false; reason: 'event_not_found' | 'event_erased' | 'subscription_not_found' | 'event_type_not_subscribed' };

export interface QueueStats {
  /** Deliveries that may be claimed now: pending and due, or sending with a lease run out. */
  due: number;
  /** When the longest-waiting of those fell due; undefined when none is due. */
  oldestDueAt: number | undefined;
  /** Deliveries by status, for the statuses that are work (not history): pending, sending, held, failed. */
  byStatus: Record<'pending' | 'sending' | 'held' | 'failed' | 'waiting' | 'postponed', number>;
  /** Endpoints whose circuit is open or half-open. */
  circuits: Record<'open' | 'half_open', number>;
}

/** One minute of an account's attempts, summed over the processes that made them. */
export interface AttemptMinute {
  /** Start of the minute, epoch ms. */
  minute: number;
  delivered: number;
  /** Attempts that did not deliver: retried, failed, gone. */
  failed: number;
}

export interface SubscriptionsNeedingAttention {
  /** Every live subscription of the account that is disabled or failing. */
  total: number;
  /** Up to the limit asked for: disabled ones first, then the longest failing. */
  subscriptions: Subscription[];
}

export interface NodeRecord {
  id: string;
  kind: 'serve' | 'worker';
  hostname: string;
  pid: number;
  startedAt: number;
  heartbeatAt: number;
}

export interface SignerRecord {
  id: string;
  position: number;
  /** Null once erased. */
  email: string | null;
  name: string | null;
  status: SignerStatus;
  actedAt: number | null;
  declineReason: string | null;
}

export interface DocumentRecord {
  id: string;
  accountId: string;
  title: string;
  externalId: string | null;
  status: DocumentStatus;
  auditSeq: number;
  auditHash: string;
  /** What its audit links are signed over; revoking them moves it on (0: never revoked). */
  auditLinkEpoch: number;
  createdAt: number;
  updatedAt: number;
  signers: SignerRecord[];
}

export interface CreateDocumentInput {
  accountId: string;
  title: string;
  externalId: string | null;
  signers: { email: string; name: string | null }[];
}

export interface DocumentFilter {
  limit: number;
  cursor?: string;
  status?: DocumentStatus;
}

export type DocumentStep =
  | { kind: 'send' }
  | { kind: 'sign'; signerId: string }
  | { kind: 'decline'; signerId: string; reason: string };

/** Who took a step and from where, for the audit entry, and the link its events carry. */
export interface StepContext {
  /** The token's id; sign and decline record the signer's address instead. */
  actor: string;
  ip: string | null;
  userAgent: string | null;
  now: number;
  /**
   * The document's signed audit link (audit_url in its events), made from the row the step holds
   * locked: it is signed over the link epoch, which a revocation moves on.
   */
  auditUrl: (doc: { id: string; auditLinkEpoch: number }) => string;
  /** The key new audit entries are hashed under (version 2; domain/audit-chain.ts). */
  chainKey: Buffer;
}

export interface Store {
  readonly dialect: DialectName;
  ping(): Promise<void>;
  close(): Promise<void>;

  ensureAccount(name: string, now: number): Promise<Account>;
  /** The account with this name, if there is one. */
  findAccount(name: string): Promise<Account | undefined>;
  countAccounts(): Promise<number>;
  createToken(input: {
    accountId: string;
    lookup: string;
    hash: string;
    scopes: string[];
    expiresAt: number | null;
    now: number;
    /** `api` unless given. */
    kind?: TokenKind;
    /**
     * With it, a CountersignError quota_exceeded instead once the account has that many tokens of
     * this kind that are neither revoked nor expired (portal sessions).
     */
    maxLive?: number;
  }): Promise<{ id: string }>;
  findToken(lookup: string): Promise<ApiToken | undefined>;
  /**
   * The token as findToken last read it, when nothing that could change it has been committed
   * since; undefined otherwise (then call findToken). No I/O: the request path's fast lane.
   */
  cachedToken(lookup: string): ApiToken | undefined;
  listTokens(): Promise<ApiToken[]>;
  revokeToken(id: string, now: number): Promise<boolean>;
  /**
   * Revokes the token only if it is this account's, of kind `portal` and not yet revoked; returns
   * whether it did. Every process stops admitting it on its next request, as after revokeToken.
   */
  revokePortalToken(accountId: string, tokenId: string, now: number): Promise<boolean>;
  /** Records that a token was used (callers throttle this; it is a write). */
  touchToken(id: string, now: number): Promise<void>;

  getCallback(accountId: string): Promise<Callback | undefined>;
  putCallback(callback: CallbackSettings): Promise<void>;
  /**
   * Makes `signingSecretSealed` the callback's signing secret; the one before keeps signing until
   * `previousValidUntil`. Creates a disabled callback row when the account has none yet. Throws
   * CountersignError('conflict') when too many secrets would sign at once.
   */
  rotateCallbackSecret(
    accountId: string,
    signingSecretSealed: string,
    previousValidUntil: number,
    now: number,
  ): Promise<Callback>;

  /**
   * Throws CountersignError('subscription_exists') when a live subscription of the account has the
   * same target_url and any of the same event types (the seed's 409).
   */
  /** With `maxPerAccount`, a CountersignError quota_exceeded once the account has that many live ones. */
  createSubscription(subscription: Subscription, maxPerAccount?: number): Promise<void>;
  getSubscription(accountId: string, id: string): Promise<Subscription | undefined>;
  /** The account's subscriptions with these ids, deleted ones included (the delivery log names their targets). */
  subscriptionsById(accountId: string, ids: string[]): Promise<Subscription[]>;
  listSubscriptions(accountId: string, filter: SubscriptionFilter): Promise<Page<Subscription>>;
  /** Applies the patch and holds or releases the subscription's deliveries in the same transaction. */
  updateSubscription(
    accountId: string,
    id: string,
    patch: SubscriptionPatch,
    now: number,
  ): Promise<Subscription | undefined>;
  /**
   * Makes `signingSecretSealed` the signing secret; the old one keeps signing alongside it until
   * `previousValidUntil`, and secrets retired before keep signing until their own expiry.
   * Undefined when the subscription is not this account's; CountersignError('conflict') when too
   * many secrets would sign at once.
   */
  rotateSigningSecret(
    accountId: string,
    id: string,
    signingSecretSealed: string,
    previousValidUntil: number,
    now: number,
  ): Promise<Subscription | undefined>;
  /** Soft-deletes and cancels every delivery not yet made. */
  deleteSubscription(accountId: string, id: string, now: number): Promise<boolean>;

  /** Commits events and their deliveries, all of a batch in one transaction (group commit). */
  publishEvents(requests: PublishRequest[], now: number): Promise<PublishResult[]>;
  /** publishEvents, with up to `claim.limit` of the new deliveries leased to `claim.owner`. */
  /**
   * With `allOrNothing`, one transaction for the whole batch that stores nothing when any request
   * is refused (a reused idempotency key with another body): it throws BatchRefusedError.
   */
  publishAndClaim(
    requests: PublishRequest[],
    now: number,
    claim: PublishClaim | undefined,
    /**
     * allOrNothing: a refused request refuses the batch (BatchRefusedError); maxDeliveries: so does
     * a batch whose events would make more deliveries than that, all together.
     */
    options?: { allOrNothing?: boolean; maxDeliveries?: number },
  ): Promise<PublishOutcome>;
  getEvent(accountId: string, id: string): Promise<EventRecord | undefined>;
  listEvents(accountId: string, filter: EventFilter): Promise<Page<EventRecord>>;

  getDelivery(accountId: string, id: string): Promise<Delivery | undefined>;
  listDeliveries(accountId: string, filter: DeliveryFilter): Promise<Page<Delivery>>;
  listAttempts(deliveryIds: string[]): Promise<Attempt[]>;
  /**
   * The account's deliveries created at or after `since`, counted by their status now; every status
   * is present (0 when none). Ranges on the time-ordered id, so it reads `(account_id, id)` only,
   * and counts the newest `cap` at most (`complete` says whether that was all).
   */
  deliveryCountsSince(accountId: string, since: number, cap: number): Promise<DeliveryCounts>;
  /** Attempts of the account per minute started in [since, until), oldest first; minutes without any are left out. */
  attemptsPerMinute(accountId: string, since: number, until: number): Promise<AttemptMinute[]>;
  /** Live subscriptions that are disabled or whose attempts are failing, with how many there are. */
  subscriptionsNeedingAttention(accountId: string, limit: number): Promise<SubscriptionsNeedingAttention>;
  /** The most recent delivery (by id) of each of these subscriptions of the account that has any. */
  latestDeliveries(accountId: string, subscriptionIds: string[]): Promise<Map<string, Delivery>>;
  /** Queues one manual attempt now. Undefined when not found; 'in_flight' when being sent. */
  requestRedelivery(
    accountId: string,
    id: string,
    now: number,
  ): Promise<Delivery | 'in_flight' | 'cancelled' | 'waiting' | undefined>;
  /** Re-queues the subscription's failed deliveries created in [since, until). */
  replayFailed(accountId: string, subscriptionId: string, since: number, until: number, now: number): Promise<number>;
  /**
   * Makes a delivery for each event of the subscription's types created in [since, until) (and not
   * before the subscription) that it never had a delivery for; at most `limit` per call.
   * Undefined when the subscription is not this account's.
   */
  recoverMissed(
    accountId: string,
    subscriptionId: string,
    since: number,
    until: number,
    now: number,
    limit: number,
  ): Promise<RecoverResult | undefined>;
  /** A new delivery of one event to one subscription, whatever became of earlier ones. */
  deliverEvent(accountId: string, eventId: string, subscriptionId: string, now: number): Promise<DeliverOutcome>;

  /** Re-seals every secret at rest in one transaction (master-key rotation); returns how many. */
  resealSecrets(reseal: Reseal): Promise<number>;
  /**
   * Re-seals, in one transaction, every value still sealed the way it was before values were
   * bound to their rows, when any is (start-up); returns how many it re-sealed (0 at once otherwise).
   */
  upgradeLegacySealed(reseal: Reseal): Promise<number>;
  /** One sealed secret from the tables that hold them, with where it belongs, if any is stored (the master-key check). */
  anySealedSecret(): Promise<{ sealed: string; context: SealContext } | undefined>;
  getSetting(key: string): Promise<string | undefined>;
  /** Stores `value` unless the key has one already; returns what is stored now. */
  putSettingIfAbsent(key: string, value: string): Promise<string>;

  /** Records a process using the database (serve, worker), with its first heartbeat. */
  registerNode(node: NodeRecord): Promise<void>;
  /** Returns false when the row is gone (another process judged this one dead and removed it). */
  heartbeatNode(id: string, now: number): Promise<boolean>;
  removeNode(id: string): Promise<void>;
  /** Processes whose heartbeat is newer than `freshSince`. */
  liveNodes(freshSince: number): Promise<NodeRecord[]>;
  /**
   * resealSecrets, in a transaction that first checks no process has a heartbeat newer than
   * `freshSince`; returns those processes instead when some have. Registering a process waits for
   * this transaction (PostgreSQL: a table lock; SQLite: one writer), so none starts under it.
   */
  resealSecretsUnlessInUse(
    freshSince: number,
    reseal: Reseal,
  ): Promise<{ ok: true; count: number } | { ok: false; live: NodeRecord[] }>;

  /**
   * One claim round of a dispatcher: up to `limit` due deliveries, divided fairly among accounts and
   * then their endpoints, each endpoint's earliest first and no more than its room; deliveries of
   * endpoints whose circuit is open are postponed instead (one may go as the probe). The store keeps
   * where the round stopped, and the next goes on from there.
   */
  claimRound(owner: string, limit: number, now: number, leaseMs: number, request: ClaimRequest): Promise<ClaimRound>;
  /** claimRound with no room limits (tests, tools): just the deliveries. */
  claimDueDeliveries(owner: string, limit: number, now: number, leaseMs: number): Promise<ClaimedDelivery[]>;
  /** The deliveries of one listen session, which no dispatcher claims, earliest first. */
  claimListenDeliveries(
    owner: string,
    sessionId: string,
    limit: number,
    now: number,
    leaseMs: number,
  ): Promise<ClaimedDelivery[]>;

  /** The token's listen session, made or brought back: active, taking these event types. */
  openListenSession(input: OpenListenSession): Promise<Subscription>;
  getListenSession(accountId: string, id: string): Promise<Subscription | undefined>;
  /** Disables the session and cancels its deliveries not yet made; how many, or undefined if not found. */
  endListenSession(accountId: string, id: string, now: number): Promise<number | undefined>;
  touchListenSessions(ids: string[], now: number): Promise<void>;
  /** Ends active sessions no stream has been connected to since `before`. */
  endIdleListenSessions(
    before: number,
    now: number,
    reason: string,
  ): Promise<{ id: string; accountId: string; cancelled: number }[]>;
  recordAttempts(owner: string, results: AttemptResult[], now: number, settings: QueueSettings): Promise<RecordOutcome>;
  releaseClaims(owner: string, deliveryIds: string[] | 'all', now: number): Promise<number>;
  /**
   * Extends the leases this owner holds on these deliveries to `now + leaseMs` (sends still in
   * flight). Returns how many it still held.
   */
  renewLeases(owner: string, deliveryIds: string[], now: number, leaseMs: number): Promise<number>;
  queueStats(now: number): Promise<QueueStats>;
  /** The circuits of these endpoints of the account; endpoints that never failed have none (closed). */
  circuitsOf(accountId: string, endpoints: string[]): Promise<Map<string, EndpointCircuit>>;
  /**
   * Brings an open circuit's probe forward to now (an operator believes the endpoint is back).
   * Undefined when the endpoint's circuit is not open; otherwise the circuit, and whether a
   * postponed delivery was made due to go as the probe (none waiting: the next one published goes).
   */
  probeNow(
    accountId: string,
    endpoint: string,
    now: number,
  ): Promise<{ circuit: EndpointCircuit; probing: boolean } | undefined>;
  /**
   * For each tripped circuit whose window has ended and whose endpoint has nothing in the queue,
   * makes its oldest postponed delivery due now (the claim that takes it sends the probe). Returns
   * how many, and when the next window ends. Dispatchers call it on their poll.
   */
  releaseProbes(now: number): Promise<{ released: number; nextAt: number | undefined }>;
  /** When the earliest pending delivery or lease falls due, if any; with `after`, the earliest of the endpoints with nothing due by then. */
  nextDueAt(after?: number): Promise<number | undefined>;
  /** Registers a listener for "new deliveries are due", from this process or (PostgreSQL) others. */
  onDue(listener: () => void): () => void;

  /** A draft document with its signers and the first entry of its audit trail. */
  createDocument(input: CreateDocumentInput, context: Omit<StepContext, 'auditUrl'>): Promise<DocumentRecord>;
  /** The document, of this account when one is given. */
  getDocument(accountId: string | undefined, id: string): Promise<DocumentRecord | undefined>;
  /** Makes every audit link of the document given out so far stop opening it; undefined when it is not the account's. */
  revokeAuditLinks(accountId: string, id: string, now: number): Promise<DocumentRecord | undefined>;
  listDocuments(accountId: string, filter: DocumentFilter): Promise<Page<DocumentRecord>>;
  /**
   * One lifecycle step, its audit entries and its events in one transaction. Throws
   * CountersignError not_found (document, signer) or conflict (the state does not allow it),
   * having written nothing.
   */
  applyDocumentStep(
    accountId: string,
    documentId: string,
    step: DocumentStep,
    context: StepContext,
  ): Promise<{ document: DocumentRecord; events: EventRecord[] }>;
  /** The document's audit trail, in sequence order. */
  auditEntries(documentId: string): Promise<AuditEntry[]>;

  // --- retention and erasure (queue/purge.ts, erasure.ts) ----------------------------------------
  /**
   * Deletes events created before `cutoff`, with their delivered, failed and cancelled deliveries
   * and those deliveries' attempts, looking at `limit` old events at most (oldest first, from
   * `after`) in one transaction. An event with a delivery not yet made stays, with all its
   * deliveries. Safe to run in several processes at once.
   */
  purgeOlderThan(cutoff: number, limit: number, after?: PurgeCursor): Promise<PurgeBatch>;
  /** What purgeOlderThan would remove with the same arguments; changes nothing. */
  countPurgeable(cutoff: number, limit: number, after?: PurgeCursor): Promise<PurgeBatch>;
  /** Events created before `cutoff`, finished or not. */
  countEventsOlderThan(cutoff: number): Promise<number>;
  /**
   * Erases a signer's address or a document from the account's events and attempt log, cancels
   * the deliveries of those events not yet made and (SQLite) rebuilds the file, so no copy is left.
   */
  eraseSubject(
    accountId: string,
    subject: ErasureSubject,
    now: number,
    settings?: Partial<ErasureSettings>,
  ): Promise<ErasureOutcome>;
}

/** Where a purge goes on: the last old event the previous call looked at. */
export interface PurgeCursor {
  createdAt: number;
  id: string;
}

export interface PurgeBatch {
  /** Old events looked at (at most the limit). */
  examined: number;
  /** Removed, or (countPurgeable) that would be. */
  events: number;
  deliveries: number;
  attempts: number;
  /** Undefined once no old event is left to look at. */
  next: PurgeCursor | undefined;
}

export type { ErasureSubject };

export interface ErasureSettings {
  /** How long to wait for the answers of deliveries that were being sent when they were cancelled. */
  inFlightWaitMs: number;
  /** Rows read per page, and events changed per transaction. */
  batchSize: number;
}

export interface ErasureOutcome {
  eventsErased: number;
  /** Deliveries not yet made that were cancelled (those being sent included). */
  deliveriesCancelled: number;
  /** Attempt rows whose answer or error held the subject, now without it. */
  attemptsScrubbed: number;
  /** Documents (POST /v1/documents) whose signers or audit entries held the subject, now without it. */
  documentsScrubbed: number;
  /** False when a copy may remain somewhere; `warnings` say where. Erasing again is safe. */
  complete: boolean;
  warnings: string[];
}
