// Fixed values and rows for the store contract suites: a clock to drive through `now`, rows as
// the API would make them, and an attempt result for a claimed delivery.

import { newId } from '../../src/domain/ids.js';
import type {
  AttemptOutcome,
  AttemptResult,
  Callback,
  ClaimedDelivery,
  Page,
  QueueSettings,
  Subscription,
} from '../../src/store/store.js';

export const T0 = Date.UTC(2025, 11, 18, 14, 30, 5);
export const SECOND = 1000;
export const HOUR = 3_600_000;
export const LEASE_MS = 30 * SECOND;
export const SETTINGS: QueueSettings = { disableAfterFailingMs: 72 * HOUR };

export function subscriptionRow(accountId: string, overrides: Partial<Subscription> = {}): Subscription {
  return {
    id: newId('sub'),
    account_id: accountId,
    target_url: 'https://your-app.com/webhooks/signed',
    event_types: 'document.signed',
    status: 'active',
    secret_token_sealed: 'sealed-secret-token',
    signing_secret_sealed: 'sealed-signing-secret',
    retired_secrets: '[]',
    disabled_reason: null,
    failing_since: null,
    created_at: T0,
    updated_at: T0,
    deleted_at: null,
    kind: 'webhook',
    listen_seen_at: null,
    rate_limit_per_second: null,
    ordering: 'none',
    ...overrides,
  };
}

/** A retired_secrets value holding one secret in its grace period. */
export const retired = (sealed: string, expiresAt: number) => JSON.stringify([{ sealed, expires_at: expiresAt }]);

/** What getCallback adds to what putCallback was given: no signing secret until one is rotated in. */
export const UNSIGNED = { signing_secret_sealed: null, retired_secrets: '[]' };

export function callbackRow(accountId: string, overrides: Partial<Omit<Callback, 'created_at'>> = {}) {
  return {
    account_id: accountId,
    url: 'https://your-app.com/callback',
    auth_type: 'Bearer' as const,
    username: null,
    password_sealed: null,
    bearer_token_sealed: 'sealed-bearer',
    updated_at: T0,
    ...overrides,
  };
}

export function result(
  claimed: ClaimedDelivery,
  outcome: AttemptOutcome,
  now: number,
  extra: Partial<AttemptResult> = {},
): AttemptResult {
  const statusCode = { delivered: 200, retry: 503, failed: 400, gone: 410 }[outcome];
  return {
    deliveryId: claimed.id,
    accountId: claimed.accountId,
    subscriptionId: claimed.subscriptionId,
    attempt: claimed.attempt,
    trigger: claimed.trigger,
    startedAt: now,
    durationMs: 12,
    statusCode,
    error: null,
    responseExcerpt: `status ${statusCode}`,
    requestUrl: claimed.target.url,
    requestHeaders: '{"content-type":"application/json"}',
    responseHeaders: '{"content-type":"text/plain"}',
    outcome,
    ...extra,
  };
}

/** Walks every page; returns the pages so a test can see their sizes too. */
export async function allPages<T>(fetch: (cursor: string | undefined) => Promise<Page<T>>): Promise<T[][]> {
  const pages: T[][] = [];
  let cursor: string | undefined;
  for (let guard = 0; guard < 100; guard++) {
    const page = await fetch(cursor);
    pages.push(page.items);
    if (page.nextCursor === null) return pages;
    cursor = page.nextCursor;
  }
  throw new Error('pagination did not end');
}

export const ids = (rows: { id: string }[]) => rows.map((r) => r.id);
