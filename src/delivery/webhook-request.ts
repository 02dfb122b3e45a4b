// The request a delivery sends: the payload, the Standard Webhooks headers and signatures, the
// callback's Authorization, and `webhook-subscription-id`, so a receiver can pick its secret
// before verifying. Also what the delivery log keeps of it: the headers as JSON with the
// Authorization value masked (the body is rebuilt from the event when shown, secret_token masked).

import { buildPayload } from '../domain/events.js';
import type { SecretBox } from '../domain/secret-box.js';
import { signingKey, signPayload } from '../domain/signing.js';
import type { ClaimedDelivery } from '../store/store.js';
import { VERSION } from '../version.js';

export const USER_AGENT = `countersign/${VERSION}`;
export const MASK = '********';

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
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
    if (target.kind === 'subscription') {
      headers['webhook-subscription-id'] = d.subscriptionId as string;
      const secretToken = target.secretTokenSealed === null ? undefined : this.secrets.open(target.secretTokenSealed);
      body = buildPayload(d.event, secretToken);
    } else {
      body = buildPayload(d.event, undefined);
      if (target.authType === 'Basic' && target.passwordSealed !== null) {
        const password = this.secrets.open(target.passwordSealed);
        headers.authorization = `Basic ${Buffer.from(`${target.username ?? ''}:${password}`).toString('base64')}`;
      } else if (target.authType === 'Bearer' && target.bearerTokenSealed !== null) {
        headers.authorization = `Bearer ${this.secrets.open(target.bearerTokenSealed)}`;
      }
    }
    if (target.signingSecretsSealed.length > 0) {
      headers['webhook-signature'] = target.signingSecretsSealed
        .map((sealed) => signPayload(this.keyFor(sealed), d.eventId, timestampSeconds, body))
        .join(' ');
    }
    return { url: target.url, headers, body };
  }

  private keyFor(sealed: string): Buffer {
    let key = this.keys.get(sealed);
    if (!key) {
      key = signingKey(this.secrets.open(sealed));
      if (this.keys.size > 10_000) this.keys.clear();
      this.keys.set(sealed, key);
    }
    return key;
  }
}

/** The headers as the delivery log keeps them: JSON, the Authorization credentials masked. */
export function loggedRequestHeaders(headers: Record<string, string>): string {
  const auth = headers.authorization;
  if (auth === undefined) return JSON.stringify(headers);
  const scheme = auth.slice(0, auth.indexOf(' '));
  return JSON.stringify({ ...headers, authorization: `${scheme} ${MASK}` });
}
