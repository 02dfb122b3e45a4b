// The request a delivery sends: the payload, the Standard Webhooks headers and signatures, the
// callback's Authorization, and `webhook-subscription-id`, so a receiver can pick its secret
// before verifying. Also what the delivery log keeps of it: the headers as JSON with the
// Authorization value masked (the body is rebuilt from the event when shown, secret_token masked).

import { buildPayload } from '../domain/events.js';
import { callbackSeal, type SealContext, type SecretBox, subscriptionSeal } from '../domain/secret-box.js';
import { signingKey, signPayload } from '../domain/signing.js';
import type { ClaimedDelivery } from '../store/store.js';
import { VERSION } from '../version.js';

export const USER_AGENT = `countersign/${VERSION}`;
export const MASK = '********';

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** The secret values this request carries, to be kept out of what the receiver answers (domain/redact.ts). */
  secrets: string[];
}

export class WebhookSigner {
  /** HMAC keys by sealed secret: opening and decoding a secret per send would cost more than the HMAC. */
  private readonly keys = new Map<string, Buffer>();

  constructor(private readonly secrets: SecretBox) {}

  /**
   * Builds the request for one attempt. Throws when a secret cannot be opened (a master key that
   * does not match the database); the dispatcher logs that as a failed attempt with its reason.
   */
  build(d: ClaimedDelivery, timestampSeconds: number): WebhookRequest {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'webhook-id': d.eventId,
      'webhook-timestamp': String(timestampSeconds),
    };
    const target = d.target;
    let body: string;
    const secrets: string[] = [];
    const sub = { id: d.subscriptionId as string, account_id: d.accountId };
    const signingContext =
      target.kind === 'subscription'
        ? subscriptionSeal('signing_secret', sub)
        : callbackSeal('signing_secret', d.accountId);
    if (target.kind === 'subscription') {
      headers['webhook-subscription-id'] = d.subscriptionId as string;
      const secretToken =
        target.secretTokenSealed === null
          ? undefined
          : this.secrets.open(target.secretTokenSealed, subscriptionSeal('secret_token', sub));
      if (secretToken !== undefined) secrets.push(secretToken);
      body = buildPayload(d.event, secretToken);
    } else {
      body = buildPayload(d.event, undefined);
      if (target.authType === 'Basic' && target.passwordSealed !== null) {
        const password = this.secrets.open(target.passwordSealed, callbackSeal('password', d.accountId));
        const credentials = Buffer.from(`${target.username ?? ''}:${password}`).toString('base64');
        headers.authorization = `Basic ${credentials}`;
        secrets.push(password, credentials);
      } else if (target.authType === 'Bearer' && target.bearerTokenSealed !== null) {
        const token = this.secrets.open(target.bearerTokenSealed, callbackSeal('bearer_token', d.accountId));
        headers.authorization = `Bearer ${token}`;
        secrets.push(token);
      }
    }
    if (target.signingSecretsSealed.length > 0) {
      headers['webhook-signature'] = target.signingSecretsSealed
        .map((sealed) => signPayload(this.keyFor(sealed, signingContext), d.eventId, timestampSeconds, body))
        .join(' ');
    }
    return { url: target.url, headers, body, secrets };
  }

  /** Cached by row and value together: a value copied into another row must not find its key here. */
  private keyFor(sealed: string, context: SealContext): Buffer {
    const memo = `${context.table}\0${context.row}\0${sealed}`;
    let key = this.keys.get(memo);
    if (!key) {
      key = signingKey(this.secrets.open(sealed, context));
      if (this.keys.size > 10_000) this.keys.clear();
      this.keys.set(memo, key);
    }
    return key;
  }
}

/**
 * What the delivery log keeps of an attempt's headers: those it cannot rebuild from the delivery
 * (user-agent, the timestamp, the signatures, the Authorization scheme with its credentials
 * masked), as JSON. content-type, webhook-id and webhook-subscription-id follow from the delivery
 * and are put back by `sentRequestHeaders`. Keeping every header in full made each attempt row
 * about 300 bytes longer, and cost the 1M-delivery drain about a fifth more CPU per delivery
 * (`node bench/run.mjs --only backlog --runs 1`, alternating: 268–296 against 218–220 µs).
 */
export function loggedRequestHeaders(headers: Record<string, string>): string {
  const kept: Record<string, string> = {
    'user-agent': headers['user-agent'] as string,
    'webhook-timestamp': headers['webhook-timestamp'] as string,
  };
  const auth = headers.authorization;
  if (auth !== undefined) kept.authorization = `${auth.slice(0, auth.indexOf(' '))} ${MASK}`;
  const signature = headers['webhook-signature'];
  if (signature !== undefined) kept['webhook-signature'] = signature;
  return JSON.stringify(kept);
}

/** The headers an attempt sent, in the order sent, from what the log kept and the delivery. */
export function sentRequestHeaders(
  logged: string,
  delivery: { eventId: string; subscriptionId: string | null },
): Record<string, string> {
  const kept = JSON.parse(logged) as Record<string, string>;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': kept['user-agent'] ?? USER_AGENT,
    'webhook-id': delivery.eventId,
    'webhook-timestamp': kept['webhook-timestamp'] ?? '',
  };
  if (delivery.subscriptionId !== null) headers['webhook-subscription-id'] = delivery.subscriptionId;
  if (kept.authorization !== undefined) headers.authorization = kept.authorization;
  if (kept['webhook-signature'] !== undefined) headers['webhook-signature'] = kept['webhook-signature'];
  return headers;
}
