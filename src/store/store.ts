// The Store: the only way the rest of countersign reaches the database. One implementation over
// Kysely serves both dialects (kysely-store.ts); the queue operations each live in their own file
// under queue/ with their SQL in plain sight.
import type { DialectName } from './dialect.js';
import type {
  AttemptsTable,
  AttemptTrigger,
  CallbacksTable,
  DeliveriesTable,
  DeliveryStatus,
  SubscriptionStatus,
  SubscriptionsTable,
} from './schema.js';

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
}

export type Callback = CallbacksTable;
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
  status?: 'active' | 'paused';
  /** null removes the secret_token. */
  secretTokenSealed?: string | null;
}

export interface EventRecord {
  id: string;
  accountId: string;
  type: string;
  dataJson: string;
  occurredAt: number;
  createdAt: number;
  deliveryCount: number;
}

export interface EventFilter {
  limit: number;
  cursor?: string;
  eventType?: string;
  since?: number;
  until?: number;
}

export interface DeliveryFilter {
  limit: number;
  cursor?: string;
  subscriptionId?: string;
  eventId?: string;
  status?: DeliveryStatus;
  since?: number;
  until?: number;
}

export interface PublishRequest {
  accountId: string;
  type: string;
  dataJson: string;
  occurredAt: number;
  idempotencyKey?: string;
  /** Hash of the request body: a reused idempotency key with another body is refused. */
  requestHash?: string;
  /** Deliver to this one subscription only (test events), instead of fanning out. */
  onlySubscriptionId?: string;
}

export type PublishResult =
  | { ok: true; event: EventRecord; replayed: boolean }
  | { ok: false; reason: 'idempotency_key_reused' };

/**
 * Direct hand-off at publish: a dispatcher in the publishing process takes up to `limit` of the
 * batch's new deliveries under its lease in the same transaction, so they skip the claim round
 * trip. Anything beyond the limit is queued as usual.
 */
export interface PublishClaim {
  owner: string;
  leaseMs: number;
  limit: number;
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
    };

export type AttemptOutcome = 'delivered' | 'retry' | 'failed' | 'gone';

export interface AttemptResult {
  deliveryId: string;
  subscriptionId: string | null;
  attempt: number;
  trigger: AttemptTrigger;
  startedAt: number;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseExcerpt: string | null;
  outcome: AttemptOutcome;
  /** For `retry`: when the next attempt is due. */
  nextAttemptAt?: number;
}

export interface QueueSettings {
  /** Disable a subscription whose attempts have all failed for this long. */
  disableAfterFailingMs: number;
}

export interface Store {
  readonly dialect: DialectName;
  ping(): Promise<void>;
  close(): Promise<void>;

  ensureAccount(name: string, now: number): Promise<Account>;
  countAccounts(): Promise<number>;
  createToken(input: {
    accountId: string;
    lookup: string;
    hash: string;
    scopes: string[];
    expiresAt: number | null;
    now: number;
  }): Promise<{ id: string }>;
  findToken(lookup: string): Promise<ApiToken | undefined>;
  /**
   * The token as findToken last read it, when nothing that could change it has been committed
   * since; undefined otherwise (then call findToken). No I/O: the request path's fast lane.
   */
  cachedToken(lookup: string): ApiToken | undefined;
  listTokens(): Promise<ApiToken[]>;
  revokeToken(id: string, now: number): Promise<boolean>;
  /** Records that a token was used (callers throttle this; it is a write). */
  touchToken(id: string, now: number): Promise<void>;

  getCallback(accountId: string): Promise<Callback | undefined>;
  putCallback(callback: Omit<Callback, 'created_at'>): Promise<void>;

  /** Throws CountersignError('subscription_exists') on a duplicate (account, target_url, event_type). */
  createSubscription(subscription: Subscription): Promise<void>;
  getSubscription(accountId: string, id: string): Promise<Subscription | undefined>;
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
   * `previousValidUntil`. Undefined when the subscription is not this account's.
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
  publishAndClaim(requests: PublishRequest[], now: number, claim: PublishClaim | undefined): Promise<PublishOutcome>;
  getEvent(accountId: string, id: string): Promise<EventRecord | undefined>;
  listEvents(accountId: string, filter: EventFilter): Promise<Page<EventRecord>>;

  getDelivery(accountId: string, id: string): Promise<Delivery | undefined>;
  listDeliveries(accountId: string, filter: DeliveryFilter): Promise<Page<Delivery>>;
  listAttempts(deliveryIds: string[]): Promise<Attempt[]>;
  /** Queues one manual attempt now. Undefined when not found; 'in_flight' when being sent. */
  requestRedelivery(
    accountId: string,
    id: string,
    now: number,
  ): Promise<Delivery | 'in_flight' | 'cancelled' | undefined>;
  /** Re-queues the subscription's failed deliveries created in [since, until). */
  replayFailed(accountId: string, subscriptionId: string, since: number, until: number, now: number): Promise<number>;

  /** Re-seals every secret at rest in one transaction (master-key rotation); returns how many. */
  resealSecrets(reseal: (sealed: string) => string): Promise<number>;

  claimDueDeliveries(owner: string, limit: number, now: number, leaseMs: number): Promise<ClaimedDelivery[]>;
  recordAttempts(owner: string, results: AttemptResult[], now: number, settings: QueueSettings): Promise<void>;
  releaseClaims(owner: string, deliveryIds: string[] | 'all', now: number): Promise<number>;
  /** When the earliest pending delivery or lease falls due, if any. */
  nextDueAt(): Promise<number | undefined>;
  /** Registers a listener for "new deliveries are due", from this process or (PostgreSQL) others. */
  onDue(listener: () => void): () => void;
}
