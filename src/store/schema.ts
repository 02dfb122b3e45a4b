// Row types of the one schema both dialects share. Times are epoch milliseconds (BIGINT), booleans
// are 0/1 integers, ids are prefixed text, and JSON is stored as text exactly as it will be sent.
import { DELIVERY_STATUSES, type DeliveryStatus } from '../domain/delivery-status.js';

export interface AccountsTable {
  id: string;
  name: string;
  created_at: number;
}

export interface ApiTokensTable {
  id: string;
  account_id: string;
  /** Public prefix of the token (`cst_` + 12 characters), unique, used to find the row. */
  lookup: string;
  /** SHA-256 (hex) of the whole token; the token itself is never stored. */
  hash: string;
  scopes: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  /** `api` (made by the CLI or the first start) or `portal` (a portal session's link). */
  kind: TokenKind;
}

export type TokenKind = 'api' | 'portal';

export interface CallbacksTable {
  account_id: string;
  /** Empty string: the callback is disabled. */
  url: string;
  auth_type: 'Basic' | 'Bearer' | 'None';
  username: string | null;
  password_sealed: string | null;
  bearer_token_sealed: string | null;
  /** The account's Standard Webhooks secret for callback deliveries; null until one is made. */
  signing_secret_sealed: string | null;
  /** Secrets a rotation retired, each still signing until its own expiry (RetiredSecret[] as JSON). */
  retired_secrets: string;
  created_at: number;
  updated_at: number;
}

export type SubscriptionStatus = 'active' | 'paused' | 'disabled';

export interface SubscriptionsTable {
  id: string;
  account_id: string;
  target_url: string;
  /** The event types it takes, space-separated, in the order given; one row each in subscription_event_types while live. */
  event_types: string;
  status: SubscriptionStatus;
  secret_token_sealed: string | null;
  signing_secret_sealed: string;
  /** Secrets a rotation retired, each still signing until its own expiry (RetiredSecret[] as JSON). */
  retired_secrets: string;
  disabled_reason: string | null;
  /** Start of the current unbroken run of failed attempts; null after any success. */
  failing_since: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  /** `webhook`: the seed's subscription, POSTed to target_url. `listen`: a `countersign listen` session. */
  kind: SubscriptionKind;
  /** A listen session: when a stream of it was last connected (null for webhooks). */
  listen_seen_at: number | null;
  /** At most this many sends a second, across every process (null: no limit). */
  rate_limit_per_second: number | null;
  /** `document`: one document's deliveries are sent one at a time, in publish order. */
  ordering: SubscriptionOrdering;
}

export type SubscriptionOrdering = 'none' | 'document';

export type SubscriptionKind = 'webhook' | 'listen';

/** One row per live subscription and event type: fan-out reads it, and its unique index is the seed's 409. */
export interface SubscriptionEventTypesTable {
  subscription_id: string;
  event_type: string;
  account_id: string;
  target_url: string;
}

export interface EventsTable {
  id: string;
  account_id: string;
  type: string;
  data: string;
  occurred_at: number;
  created_at: number;
  idempotency_key: string | null;
  request_hash: string | null;
  delivery_count: number;
  /** 1 for a test event (POST …/test): marked in its payload, kept out of lists unless asked for. */
  test: number;
  /** data.document_id, for the delivery log's filter. */
  document_id: string | null;
  /** 'lifecycle' for an event the documents lifecycle made; null for every other. */
  source: string | null;
}

/**
 * pending -> sending -> delivered | pending (retry) | failed; held while the subscription is paused
 * or disabled; cancelled when it is deleted. While `sending`, `next_attempt_at` is the lease expiry,
 * so one partial index finds both due and abandoned deliveries. `waiting`: an ordered
 * subscription's delivery behind an earlier unfinished one of the same document (order_key); it
 * becomes pending when that one is delivered, finally fails or is cancelled. `postponed`: its
 * endpoint's circuit is open; pending again (keeping its due time) when the circuit closes.
 */
export { DELIVERY_STATUSES, type DeliveryStatus };

/** Statuses of a delivery not yet made: never purged, cancelled by erasure and deletion. */
export const UNFINISHED_STATUSES = ['pending', 'sending', 'held', 'waiting', 'postponed'] as const;

export interface DeliveriesTable {
  id: string;
  event_id: string;
  account_id: string;
  /** Null for a delivery to the account callback. */
  subscription_id: string | null;
  status: DeliveryStatus;
  /** Attempts started so far (each claim counts one). */
  attempt_count: number;
  /** attempt_count when the current retry round began (a replay starts a new round). */
  round_start: number;
  /** 1 while a manual redelivery is queued: one attempt, no retries. */
  manual: number;
  next_attempt_at: number;
  lease_owner: string | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
  /** 1 for a listen session's delivery: only the process holding the session's stream claims it. */
  listen: number;
  /** data.document_id when the subscription orders by document, else null. */
  order_key: string | null;
  /** queueKeyOf(subscription_id, or account_id for the callback): what the queue index is ordered by. */
  queue_key: number;
}

export type AttemptTrigger = 'scheduled' | 'manual';

/** Keyed by (delivery_id, number): attempt numbers come from the claim, one per attempt started. */
export interface AttemptsTable {
  delivery_id: string;
  number: number;
  trigger: AttemptTrigger;
  started_at: number;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_excerpt: string | null;
  /** The URL the attempt was sent to. Null for attempts logged before migration 003. */
  request_url: string | null;
  /** The headers sent, as a JSON object, with Authorization masked. */
  request_headers: string | null;
  /** The answer's headers, as a JSON object (bounded), when there was an answer. */
  response_headers: string | null;
}

/** A process using the database (serve or worker), kept fresh by its heartbeat. */
export interface NodesTable {
  id: string;
  kind: string;
  hostname: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
}

/**
 * Attempts per account, minute and process, summed as recordAttempts writes them: the portal's
 * per-minute chart reads these rows instead of the attempt log. Each process writes its own rows
 * (node is its dispatcher's owner id), so writers never contend for one row.
 */
export interface AttemptStatsTable {
  account_id: string;
  /** Start of the minute, epoch ms. */
  minute: number;
  node: string;
  delivered: number;
  /** Attempts with any other outcome: retried, failed, gone. */
  failed: number;
}

/** A throttled subscription's next free send slot. */
export interface ThrottleSlotsTable {
  subscription_id: string;
  /** Epoch microseconds: a slot is 1e6 / rate_limit_per_second long. */
  next_us: number;
}

export type CircuitStateColumn = 'closed' | 'open' | 'half_open';

/**
 * An endpoint's circuit breaker (src/domain/circuit.ts), shared by every process. `endpoint` is
 * the subscription id, or the account id for the account's callback: coalesce(subscription_id,
 * account_id) of its deliveries. A row exists once the endpoint has failed.
 */
export interface EndpointCircuitsTable {
  endpoint: string;
  account_id: string;
  state: CircuitStateColumn;
  /** Faults in a row since the last success. */
  failures: number;
  /** Openings since the last success (the window doubles with each). */
  openings: number;
  reason: string | null;
  opened_at: number | null;
  /** Open: when the probe may go. Half-open: when an unanswered probe is given up. */
  retry_at: number | null;
  updated_at: number;
}

export type DocumentStatus = 'draft' | 'sent' | 'completed' | 'declined';

/** A document of countersign's own signing lifecycle (issue 18). */
export interface DocumentsTable {
  id: string;
  account_id: string;
  title: string;
  external_id: string | null;
  status: DocumentStatus;
  /** The head of the audit chain: the last entry's number and hash (0 and the genesis hash before any). */
  audit_seq: number;
  audit_hash: string;
  /** What the document's audit links are signed over; revoking them moves it on (0: never revoked). */
  audit_link_epoch: number;
  created_at: number;
  updated_at: number;
}

export type SignerStatus = 'pending' | 'signed' | 'declined';

export interface DocumentSignersTable {
  id: string;
  document_id: string;
  /** Order among the document's signers, from 0. */
  position: number;
  /** Null once erased (POST /v1/erasure), as is the name. */
  email: string | null;
  name: string | null;
  status: SignerStatus;
  /** When the signer signed or declined. */
  acted_at: number | null;
  decline_reason: string | null;
}

/** One link of a document's audit chain (src/domain/audit-chain.ts). */
export interface AuditEntriesTable {
  document_id: string;
  seq: number;
  at: number;
  action: string;
  /** The personal fields, null once erased: actor, ip, user agent, detail (a JSON object of strings). */
  actor: string | null;
  ip: string | null;
  user_agent: string | null;
  detail: string | null;
  /** The commitment's salt (hex), null once erased. */
  salt: string | null;
  /** SHA-256 of the salt and the personal fields' canonical JSON: what the chain hashes. */
  personal: string;
  prev_hash: string;
  hash: string;
  /** 1: SHA-256 (made before the chain key existed); 2: HMAC-SHA256 under the chain key. */
  hash_version: number;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface Database {
  accounts: AccountsTable;
  api_tokens: ApiTokensTable;
  callbacks: CallbacksTable;
  subscriptions: SubscriptionsTable;
  subscription_event_types: SubscriptionEventTypesTable;
  events: EventsTable;
  deliveries: DeliveriesTable;
  attempts: AttemptsTable;
  attempt_stats: AttemptStatsTable;
  countersign_nodes: NodesTable;
  countersign_settings: SettingsTable;
  throttle_slots: ThrottleSlotsTable;
  endpoint_circuits: EndpointCircuitsTable;
  documents: DocumentsTable;
  document_signers: DocumentSignersTable;
  audit_entries: AuditEntriesTable;
}
