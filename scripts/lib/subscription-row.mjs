// A subscriptions row for the cost scripts, which write straight to the store (no API, no sealing):
// endpoint `i` of `accountId`, taking document.signed at its own origin.

/** The row for subscription `id`, endpoint number `i`; `status` is active unless given. */
export function subscriptionRow(accountId, id, i, now, status = 'active') {
  return {
    id,
    account_id: accountId,
    target_url: `https://endpoint-${i}.example.com/hooks`,
    event_types: 'document.signed',
    status,
    secret_token_sealed: null,
    signing_secret_sealed: 'sealed',
    retired_secrets: '[]',
    disabled_reason: null,
    failing_since: null,
    created_at: now,
    updated_at: now,
    deleted_at: null,
    kind: 'webhook',
    listen_seen_at: null,
    rate_limit_per_second: null,
    ordering: 'none',
  };
}
