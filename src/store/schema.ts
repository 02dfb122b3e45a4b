// Row types of the one schema both dialects share. Times are epoch milliseconds (BIGINT), booleans
// are 0/1 integers, ids are prefixed text, and JSON is stored as text exactly as it will be sent.
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
}

export interface CallbacksTable {
  account_id: string;
  /** Empty string: the callback is disabled. */
  url: string;
  auth_type: 'Basic' | 'Bearer' | 'None';
  username: string | null;
  password_sealed: string | null;
  bearer_token_sealed: string | null;
  created_at: number;
  updated_at: number;
}

export type SubscriptionStatus = 'active' | 'paused' | 'disabled';

export interface SubscriptionsTable {
  id: string;
  account_id: string;
  target_url: string;
  event_type: string;
  status: SubscriptionStatus;
  secret_token_sealed: string | null;
  signing_secret_sealed: string;
  /** The previous signing secret, still signed with until `previous_secret_expires_at` (rotation). */
  previous_secret_sealed: string | null;
  previous_secret_expires_at: number | null;
  disabled_reason: string | null;
  /** Start of the current unbroken run of failed attempts; null after any success. */
  failing_since: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
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
}

/**
 * pending -> sending -> delivered | pending (retry) | failed; held while the subscription is paused
 * or disabled; cancelled when it is deleted. While `sending`, `next_attempt_at` is the lease expiry,
 * so one partial index finds both due and abandoned deliveries.
 */
export type DeliveryStatus = 'pending' | 'sending' | 'delivered' | 'failed' | 'held' | 'cancelled';

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
}

export interface Database {
  accounts: AccountsTable;
  api_tokens: ApiTokensTable;
  callbacks: CallbacksTable;
  subscriptions: SubscriptionsTable;
  events: EventsTable;
  deliveries: DeliveriesTable;
  attempts: AttemptsTable;
}
