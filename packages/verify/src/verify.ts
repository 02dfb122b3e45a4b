// Verifies a webhook from countersign the Standard Webhooks way: the HMAC-SHA256 of
// `${webhook-id}.${webhook-timestamp}.${body}` under the whsec_ secret must match one of the `v1,`
// signatures in `webhook-signature`, and the timestamp must be within the tolerance of now. The
// comparison is Web Crypto's HMAC verify, which runs in constant time. Web Crypto is all it needs,
// so it runs on Node, Deno, Bun and edge runtimes alike.

/** Why a webhook was refused; stable, for code to branch on. */
export type VerificationErrorCode =
  | 'missing_header'
  | 'bad_signature'
  | 'timestamp_too_old'
  | 'timestamp_in_future'
  | 'bad_secret_token'
  | 'bad_json';

export class WebhookVerificationError extends Error {
  readonly code: VerificationErrorCode;
  constructor(code: VerificationErrorCode, message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
    this.code = code;
  }
}

/** Headers as Node gives them (`req.headers`), as a plain object, or as a Fetch `Headers`. */
export type WebhookHeaders =
  | { get(name: string): string | null }
  | Record<string, string | readonly string[] | undefined>;

/** The raw body as it arrived: a string, or its bytes (a Node Buffer is a Uint8Array). */
export type WebhookPayload = string | Uint8Array | ArrayBuffer;

export interface VerifyOptions {
  payload: WebhookPayload;
  headers: WebhookHeaders;
  /** The subscription's `whsec_…` signing secret, or several while a rotation is under way. */
  secret: string | readonly string[];
  /** How far the timestamp may be from now, either way; 300 s by default. */
  toleranceSeconds?: number;
  /** The subscription's `secret_token`, when it has one: the payload must carry the same. */
  secretToken?: string;
  /** The time to check against, in ms (tests); the clock by default. */
  now?: number;
}

/** The payload countersign sends (seed shape), with room for the fields of your own in `data`. */
export interface WebhookEvent<Data = Record<string, unknown>> {
  id: string;
  event: string;
  timestamp: string;
  data: Data;
  secret_token?: string;
  test?: boolean;
  [field: string]: unknown;
}

const SECRET_PREFIX = 'whsec_';
const encoder = new TextEncoder();

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const record = headers as Record<string, string | readonly string[] | undefined>;
  const value = record[name] ?? Object.entries(record).find(([key]) => key.toLowerCase() === name)?.[1];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.join(', ');
}

function bytesOf(payload: WebhookPayload): Uint8Array {
  if (typeof payload === 'string') return encoder.encode(payload);
  return payload instanceof Uint8Array ? payload : new Uint8Array(payload);
}

function base64ToBytes(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

let subtleCrypto: SubtleCrypto | undefined;
async function subtle(): Promise<SubtleCrypto> {
  if (subtleCrypto) return subtleCrypto;
  const global = (globalThis as { crypto?: Crypto }).crypto;
  if (global?.subtle) {
    subtleCrypto = global.subtle;
  } else {
    // Node 18 keeps Web Crypto off the global object unless asked; it is the same API. The name is
    // a variable so that bundlers for edge runtimes (which have the global) leave it alone.
    const nodeCrypto = 'node:crypto';
    const node = (await import(nodeCrypto)) as { webcrypto: Crypto };
    subtleCrypto = node.webcrypto.subtle;
  }
  return subtleCrypto;
}

const keys = new Map<string, Promise<CryptoKey>>();
function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    const raw = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
    const bytes = base64ToBytes(raw);
    if (!bytes || bytes.length === 0) {
      throw new TypeError('secret must be a whsec_ secret: "whsec_" and the key in base64');
    }
    key = subtle().then((s) => s.importKey('raw', bytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']));
    if (keys.size > 64) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

/** Equal strings, in time that depends on their length only. */
function sameText(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/**
 * The parsed event, once its signature, timestamp and (when given) secret_token check out.
 * Throws WebhookVerificationError with a stable `code` otherwise; throws TypeError for a secret
 * that is not a whsec_ secret (a mistake in the receiver's configuration, not in the webhook).
 */
export async function verifyWebhook<Data = Record<string, unknown>>(
  options: VerifyOptions,
): Promise<WebhookEvent<Data>> {
  const { headers, toleranceSeconds = 300 } = options;
  const secrets = typeof options.secret === 'string' ? [options.secret] : [...options.secret];
  if (secrets.length === 0) throw new TypeError('secret must be a whsec_ secret, or a non-empty array of them');
  const cryptoKeys = await Promise.all(secrets.map(keyFor));

  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signature = header(headers, 'webhook-signature');
  for (const [name, value] of [
    ['webhook-id', id],
    ['webhook-timestamp', timestamp],
    ['webhook-signature', signature],
  ] as const) {
    if (!value) throw new WebhookVerificationError('missing_header', `the ${name} header is missing`);
  }
  if (!/^\d{1,15}$/.test(timestamp as string)) {
    throw new WebhookVerificationError('missing_header', 'the webhook-timestamp header is not a Unix time in seconds');
  }
  const sentAt = Number(timestamp);
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (now - sentAt > toleranceSeconds) {
    throw new WebhookVerificationError('timestamp_too_old', `the webhook was signed ${now - sentAt} s ago`);
  }
  if (sentAt - now > toleranceSeconds) {
    throw new WebhookVerificationError('timestamp_in_future', `the webhook is dated ${sentAt - now} s ahead`);
  }

  const body = bytesOf(options.payload);
  const prefix = encoder.encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix, 0);
  signed.set(body, prefix.length);

  const given = (signature as string)
    .split(' ')
    .filter((entry) => entry.startsWith('v1,'))
    .map((entry) => base64ToBytes(entry.slice(3)))
    .filter((bytes): bytes is Uint8Array<ArrayBuffer> => bytes !== undefined && bytes.length === 32);
  const s = await subtle();
  let verified = false;
  for (const key of cryptoKeys) {
    for (const candidate of given) {
      if (await s.verify('HMAC', key, candidate, signed)) verified = true;
    }
  }
  if (!verified) {
    throw new WebhookVerificationError('bad_signature', 'no v1 signature matches the payload under the secret');
  }

  let event: WebhookEvent<Data>;
  try {
    event = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as WebhookEvent<Data>;
  } catch {
    throw new WebhookVerificationError('bad_json', 'the payload is not JSON');
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new WebhookVerificationError('bad_json', 'the payload is not a JSON object');
  }
  if (options.secretToken !== undefined) {
    const sent = event.secret_token;
    if (typeof sent !== 'string' || !sameText(sent, options.secretToken)) {
      throw new WebhookVerificationError('bad_secret_token', 'the payload’s secret_token does not match');
    }
  }
  return event;
}
