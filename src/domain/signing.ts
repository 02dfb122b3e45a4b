// Standard Webhooks (v1) signing: `webhook-signature: v1,<base64 HMAC-SHA256(id.timestamp.body)>`
// under the key carried by a `whsec_<base64>` secret. Pure functions, no I/O.
import { createHmac, randomBytes } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';

/** A new signing secret: `whsec_` + base64 of 32 random bytes. */
export function generateSigningSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

export function signingKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Buffer.from(encoded, 'base64');
}

/** One `v1,<sig>` entry; callers join several with spaces while a rotated secret is in grace. */
export function signPayload(key: Buffer, msgId: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', key).update(`${msgId}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}
