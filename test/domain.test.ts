// Pure domain logic, tested with plain values.
import { createCipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { SlotList } from '../src/delivery/slot-list.js';
import { classifyStatus, describeSendError } from '../src/domain/classify.js';
import { buildPayload, validateEventData } from '../src/domain/events.js';
import { isId, newId, pooledRandom } from '../src/domain/ids.js';
import { FixedWindowLimiter } from '../src/domain/rate-limit.js';
import {
  DEFAULT_RETRY_SCHEDULE,
  MAX_RETRY_AFTER_MS,
  nextRetryDelay,
  parseRetryAfter,
  parseRetrySchedule,
} from '../src/domain/retry-policy.js';
import { callbackSeal, isLegacySealed, SecretBox, settingSeal, subscriptionSeal } from '../src/domain/secret-box.js';
import { generateSigningSecret, signingKey, signPayload } from '../src/domain/signing.js';
import { checkTargetUrl } from '../src/domain/target-url.js';
import { parseDuration, parseTimestamp, toIsoSeconds } from '../src/domain/time.js';
import { hashToken, issueToken, tokenLookup, tokenMatches } from '../src/domain/tokens.js';
import { CountersignError } from '../src/errors.js';
import { heapFlags } from '../src/heap-tuning.js';
import { GenerationCache } from '../src/store/generation-cache.js';

describe('retry policy', () => {
  it('defaults to ten attempts: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h', () => {
    expect(DEFAULT_RETRY_SCHEDULE.map((ms) => ms / 1000)).toEqual([
      0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400,
    ]);
    const total = DEFAULT_RETRY_SCHEDULE.reduce((a, b) => a + b, 0);
    expect(total / 86_400_000).toBeGreaterThan(3);
    expect(total / 86_400_000).toBeLessThan(3.3);
  });

  it('parses COUNTERSIGN_RETRY_SCHEDULE and refuses garbage', () => {
    expect(parseRetrySchedule('0,1s,2s')).toEqual([0, 1000, 2000]);
    expect(parseRetrySchedule('250ms, 5m ,2h,1d')).toEqual([250, 300_000, 7_200_000, 86_400_000]);
    expect(() => parseRetrySchedule('0,soon')).toThrow(/soon/);
  });

  it('jitters each step by at most 20 % either way and never jitters an immediate retry', () => {
    const schedule = [0, 10_000, 100_000];
    expect(nextRetryDelay(schedule, 1, undefined, () => 0)).toBe(8_000);
    expect(nextRetryDelay(schedule, 1, undefined, () => 1)).toBe(12_000);
    expect(nextRetryDelay(schedule, 2, undefined, () => 0.5)).toBe(100_000);
    expect(nextRetryDelay([0, 0], 1, undefined, () => 1)).toBe(0);
  });

  it('returns undefined once the schedule is spent', () => {
    expect(nextRetryDelay([0, 1000, 2000], 3, undefined)).toBeUndefined();
  });

  it('honours Retry-After, clamped between the scheduled delay and 24 h', () => {
    const schedule = [0, 5_000, 300_000];
    expect(nextRetryDelay(schedule, 1, 60_000, () => 0.5)).toBe(60_000);
    expect(nextRetryDelay(schedule, 1, 1_000, () => 0.5)).toBe(5_000);
    expect(nextRetryDelay(schedule, 1, 10 * 86_400_000, () => 0.5)).toBe(MAX_RETRY_AFTER_MS);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2025-12-18T12:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Thu, 18 Dec 2025 12:01:00 GMT', now)).toBe(60_000);
    expect(parseRetryAfter('nonsense', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('names the malformed schedule entry as written, without its spaces, and refuses an empty schedule', () => {
    expect(() => parseRetrySchedule('0, soon ,5m')).toThrow(
      new Error('invalid retry schedule entry "soon" (use e.g. 0,5s,5m,2h)'),
    );
    expect(() => parseRetrySchedule('')).toThrow('invalid retry schedule entry ""');
    expect(() => parseRetrySchedule('0,,5s')).toThrow('invalid retry schedule entry ""');
  });

  it('reads Retry-After seconds with surrounding spaces, and only all-digit values as seconds', () => {
    const now = Date.parse('2025-12-18T12:00:00Z');
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('0', now)).toBe(0);
    // Digits with something before or after them are neither delta-seconds nor a date.
    for (const value of ['120abc', 'abc120', '120 seconds', '1e3', '0x10']) {
      expect(parseRetryAfter(value, now), value).toBeUndefined();
    }
  });
});

describe('Standard Webhooks signing', () => {
  it('produces signatures the standardwebhooks package accepts', () => {
    const secret = generateSigningSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    const ts = Math.floor(Date.now() / 1000);
    const body = '{"event":"document.signed"}';
    const signature = signPayload(signingKey(secret), 'evt_1', ts, body);
    const verified = new Webhook(secret).verify(body, {
      'webhook-id': 'evt_1',
      'webhook-timestamp': String(ts),
      'webhook-signature': signature,
    });
    expect(verified).toEqual({ event: 'document.signed' });
  });

  it('is rejected by standardwebhooks when the body was changed', () => {
    const secret = generateSigningSecret();
    const ts = Math.floor(Date.now() / 1000);
    const signature = signPayload(signingKey(secret), 'evt_1', ts, '{"a":1}');
    expect(() =>
      new Webhook(secret).verify('{"a":2}', {
        'webhook-id': 'evt_1',
        'webhook-timestamp': String(ts),
        'webhook-signature': signature,
      }),
    ).toThrow();
  });
});

describe('event payloads', () => {
  const event = {
    id: 'evt_01',
    type: 'document.signed',
    occurredAt: Date.parse('2025-12-18T14:30:05Z'),
    dataJson:
      '{"document_id":"doc_88291","signer_email":"client@example.com","audit_url":"https://congasign.com/audit/88291"}',
    test: false,
  };

  it('is the seed payload plus the event id', () => {
    expect(JSON.parse(buildPayload(event, undefined))).toEqual({
      event: 'document.signed',
      timestamp: '2025-12-18T14:30:05Z',
      data: {
        document_id: 'doc_88291',
        signer_email: 'client@example.com',
        audit_url: 'https://congasign.com/audit/88291',
      },
      id: 'evt_01',
    });
  });

  it('marks a test event with "test": true, and no other', () => {
    expect(JSON.parse(buildPayload({ ...event, test: true }, 'tok'))).toMatchObject({ id: 'evt_01', test: true });
    expect(JSON.parse(buildPayload(event, 'tok'))).not.toHaveProperty('test');
  });

  it('carries secret_token when the subscription has one, escaped as JSON', () => {
    const payload = JSON.parse(buildPayload(event, 'sh"hh\\'));
    expect(payload.secret_token).toBe('sh"hh\\');
  });

  it('requires document_id, signer_email and audit_url, naming the field', () => {
    const good = { document_id: 'd', signer_email: 'a@b.co', audit_url: 'https://x.test/a' };
    expect(validateEventData('document.sent', { ...good, extra: 1 })).toMatchObject(good);
    for (const [field, value, message] of [
      ['document_id', undefined, 'data.document_id'],
      ['document_id', 7, 'data.document_id'],
      ['signer_email', 'not-an-email', 'data.signer_email'],
      ['audit_url', 'ftp://x', 'data.audit_url'],
      ['audit_url', 'relative/path', 'data.audit_url'],
    ] as const) {
      const data: Record<string, unknown> = { ...good, [field]: value };
      if (value === undefined) delete data[field];
      expect(() => validateEventData('document.signed', data)).toThrow(message);
    }
    expect(() => validateEventData('document.declined', { ...good, reason: 5 })).toThrow('data.reason');
  });
});

describe('API tokens', () => {
  it('are random, prefixed, at least 32 bytes, and stored only as a hash', () => {
    const a = issueToken();
    const b = issueToken();
    expect(a.token).toMatch(/^cst_[A-Za-z0-9_-]{43}$/);
    expect(a.token).not.toBe(b.token);
    expect(Buffer.from(a.token.slice(4), 'base64url').length).toBeGreaterThanOrEqual(32);
    expect(a.hash).toBe(hashToken(a.token));
    expect(a.hash).not.toContain(a.token.slice(4));
    expect(tokenLookup(a.token)).toBe(a.lookup);
    expect(tokenMatches(a.token, a.hash)).toBe(true);
    expect(tokenMatches(b.token, a.hash)).toBe(false);
    expect(tokenMatches(a.token, Buffer.from(a.hash, 'hex'))).toBe(true);
    expect(tokenMatches(b.token, Buffer.from(a.hash, 'hex'))).toBe(false);
    expect(tokenMatches(a.token, 'abcd')).toBe(false);
  });

  it('refuses strings that cannot be tokens before any lookup', () => {
    expect(tokenLookup('cst_short')).toBeUndefined();
    expect(tokenLookup(`xyz_${'a'.repeat(43)}`)).toBeUndefined();
  });
});

describe('rate limits', () => {
  it('lets max requests through per window from a key’s first request, then refuses until it starts over', () => {
    const limiter = new FixedWindowLimiter(3, 10_000);
    expect([0, 1, 2, 3, 4].map((t) => limiter.take('tok_a', 1_000 + t).allowed)).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
    expect(limiter.take('tok_a', 5_000)).toEqual({ allowed: false, limit: 3, remaining: 0, resetInMs: 6_000 });
    // Another key has its own window.
    expect(limiter.take('tok_b', 5_000)).toEqual({ allowed: true, limit: 3, remaining: 2, resetInMs: 10_000 });
    // tok_a's window began at 1,000: at 11,000 it starts over.
    expect(limiter.take('tok_a', 10_999).allowed).toBe(false);
    expect(limiter.take('tok_a', 11_000)).toEqual({ allowed: true, limit: 3, remaining: 2, resetInMs: 10_000 });
  });

  it('starts a window over when the clock goes back, and forgets every key past its key bound', () => {
    const limiter = new FixedWindowLimiter(1, 1_000, 2);
    expect(limiter.take('a', 5_000).allowed).toBe(true);
    expect(limiter.take('a', 5_001).allowed).toBe(false);
    expect(limiter.take('a', 4_000).allowed).toBe(true);
    expect(limiter.take('b', 4_000).allowed).toBe(true);
    // A third key clears the map: a and b start afresh rather than anyone being refused wrongly.
    expect(limiter.take('c', 4_001).allowed).toBe(true);
    expect(limiter.take('a', 4_002).allowed).toBe(true);
    expect(() => new FixedWindowLimiter(0, 1_000)).toThrow(RangeError);
  });

  it('counts requests that arrive in the same millisecond', () => {
    const limiter = new FixedWindowLimiter(3, 10_000);
    expect([1, 2, 3, 4, 5].map(() => limiter.take('tok_a', 1_000))).toEqual([
      { allowed: true, limit: 3, remaining: 2, resetInMs: 10_000 },
      { allowed: true, limit: 3, remaining: 1, resetInMs: 10_000 },
      { allowed: true, limit: 3, remaining: 0, resetInMs: 10_000 },
      { allowed: false, limit: 3, remaining: 0, resetInMs: 10_000 },
      { allowed: false, limit: 3, remaining: 0, resetInMs: 10_000 },
    ]);
  });

  it('allows exactly max requests of any burst inside one window, however they are spread', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 60 }),
        (max, windowMs, fractions) => {
          const limiter = new FixedWindowLimiter(max, windowMs);
          const start = 1_000_000;
          const times = [start, ...fractions.map((f) => start + Math.floor(f * windowMs))].sort((a, b) => a - b);
          const decisions = times.map((t) => limiter.take('k', t));
          expect(decisions.filter((d) => d.allowed)).toHaveLength(Math.min(max, times.length));
          decisions.forEach((d, i) => {
            expect(d.allowed).toBe(i < max);
            expect(d.remaining).toBe(Math.max(0, max - i - 1));
            expect(d.resetInMs).toBe(start + windowMs - (times[i] as number));
          });
        },
      ),
    );
  });

  it('refuses a limit or window that is not positive', () => {
    for (const [max, windowMs] of [
      [0, 1_000],
      [-1, 1_000],
      [Number.NaN, 1_000],
      [10, 0],
      [10, -1_000],
      [10, Number.NaN],
    ] as const) {
      expect(() => new FixedWindowLimiter(max, windowMs), `${max}/${windowMs}`).toThrow(
        new RangeError('max and windowMs must be positive'),
      );
    }
    expect(new FixedWindowLimiter(1, 1).take('k', 0).allowed).toBe(true);
  });
});

describe('secrets at rest', () => {
  const HERE = subscriptionSeal('signing_secret', { id: 'sub_1', account_id: 'acc_1' });

  it('seals with AES-256-GCM so that the sealed text reveals nothing and opens back', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal('your.password', HERE);
    expect(sealed).not.toContain('your.password');
    expect(sealed.startsWith(`v2.${box.keyId}.`)).toBe(true);
    expect(box.seal('your.password', HERE)).not.toBe(sealed);
    expect(box.open(sealed, HERE)).toBe('your.password');
  });

  it('refuses to open a value sealed under another key or tampered with', () => {
    const sealed = new SecretBox(randomBytes(32)).seal('x', HERE);
    expect(() => new SecretBox(randomBytes(32)).open(sealed, HERE)).toThrow(/another master key/);
    const box = new SecretBox(randomBytes(32));
    const good = box.seal('secret', HERE);
    const parts = good.split('.');
    const body = Buffer.from(parts[3] as string, 'base64url');
    body[0] = (body[0] as number) ^ 1;
    parts[3] = body.toString('base64url');
    expect(() => box.open(parts.join('.'), HERE)).toThrow();
  });

  it('opens a value only where it was sealed: another row, account, purpose or table is refused', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal('whsec_x', HERE);
    // Opened once where it belongs, so a memo of it exists: it must not answer for another place.
    expect(box.open(sealed, HERE)).toBe('whsec_x');
    for (const elsewhere of [
      subscriptionSeal('signing_secret', { id: 'sub_2', account_id: 'acc_1' }),
      subscriptionSeal('signing_secret', { id: 'sub_1', account_id: 'acc_2' }),
      subscriptionSeal('secret_token', { id: 'sub_1', account_id: 'acc_1' }),
      callbackSeal('signing_secret', 'acc_1'),
      settingSeal('audit_link_key'),
    ]) {
      expect(() => box.open(sealed, elsewhere), JSON.stringify(elsewhere)).toThrow(/sealed for another row/);
    }
  });

  it('opens a value sealed before values were bound to their rows only to re-seal it', () => {
    const key = randomBytes(32);
    const box = new SecretBox(key);
    // The old form, made here independently: AES-256-GCM with no associated data, `v1.<keyId>.<iv>.<body>`.
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const body = Buffer.concat([cipher.update('legacy', 'utf8'), cipher.final(), cipher.getAuthTag()]);
    const legacy = `v1.${box.keyId}.${iv.toString('base64url')}.${body.toString('base64url')}`;
    expect(isLegacySealed(legacy)).toBe(true);
    expect(() => box.open(legacy, HERE)).toThrow(/before secrets were bound/);
    expect(box.openAny(legacy, HERE)).toBe('legacy');
    const resealed = box.seal(box.openAny(legacy, HERE), HERE);
    expect(box.open(resealed, HERE)).toBe('legacy');
  });

  it('refuses a master key that is not 32 bytes', () => {
    for (const length of [0, 16, 31, 33, 64]) {
      expect(() => new SecretBox(Buffer.alloc(length, 7)), String(length)).toThrow('the master key must be 32 bytes');
    }
  });

  it('keeps callbacks and settings apart: each account, purpose and setting name opens only its own', () => {
    const box = new SecretBox(randomBytes(32));
    const places = [
      callbackSeal('password', 'acc_1'),
      callbackSeal('bearer_token', 'acc_1'),
      callbackSeal('signing_secret', 'acc_1'),
      callbackSeal('password', 'acc_2'),
      // Same purpose, row and account as the callback's signing secret: only the table differs.
      subscriptionSeal('signing_secret', { id: 'acc_1', account_id: 'acc_1' }),
      settingSeal('audit_link_key'),
      settingSeal('master_key_check'),
    ];
    places.forEach((sealedFor, i) => {
      const sealed = box.seal(`secret ${i}`, sealedFor);
      places.forEach((openedAs, j) => {
        if (i === j) expect(box.open(sealed, openedAs)).toBe(`secret ${i}`);
        else expect(() => box.open(sealed, openedAs), `${i} as ${j}`).toThrow(/sealed for another row/);
      });
    });
  });

  it('keeps the stored form stable, so values sealed by earlier releases still open', () => {
    // The v2 form, built here independently of SecretBox: `v2.<keyId>.<iv>.<ciphertext+tag>`, keyId
    // the first 8 base64url characters of the key's SHA-256, AES-256-GCM over the UTF-8 text with
    // associated data `countersign sealed v2\n<purpose>\n<table>\n<row>\n<account>`.
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const box = new SecretBox(key);
    expect(box.keyId).toBe('Yw3NKWbE');
    const sealedBefore = (plaintext: string, where: string) => {
      const iv = Buffer.alloc(12, 9);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(`countersign sealed v2\n${where}`, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `v2.Yw3NKWbE.${iv.toString('base64url')}.${body.toString('base64url')}`;
    };
    const secret = 'pässwörd ✓ 秘密';
    for (const [context, where] of [
      [
        subscriptionSeal('secret_token', { id: 'sub_1', account_id: 'acc_1' }),
        'secret_token\nsubscriptions\nsub_1\nacc_1',
      ],
      [callbackSeal('bearer_token', 'acc_1'), 'bearer_token\ncallbacks\nacc_1\nacc_1'],
      [settingSeal('audit_link_key'), 'setting\ncountersign_settings\naudit_link_key\n-'],
    ] as const) {
      expect(box.open(sealedBefore(secret, where), context), where).toBe(secret);
      expect(box.open(box.seal(secret, context), context)).toBe(secret);
    }
  });

  it('tells a value sealed under another master key, or malformed, from one sealed for another row', () => {
    const box = new SecretBox(randomBytes(32));
    const good = box.seal('secret', HERE);
    const [, keyId, iv, body] = good.split('.');
    const otherKey = new SecretBox(randomBytes(32)).seal('secret', HERE);
    for (const sealed of [
      otherKey,
      `v3.${keyId}.${iv}.${body}`,
      `v2.${keyId}.${iv}`,
      `v2.${keyId}.${iv}.`,
      `v2.${keyId}..${body}`,
      `v2.${keyId}`,
      'v2',
      '',
    ]) {
      expect(() => box.open(sealed, HERE), sealed).toThrow(
        new Error('secret was sealed under another master key or is corrupt'),
      );
      expect(() => box.openAny(sealed, HERE), sealed).toThrow(
        new Error('secret was sealed under another master key or is corrupt'),
      );
    }
    // A legacy value of another master key is refused the same way when it is re-sealed.
    expect(() => box.openAny(`v1.${otherKey.slice(3)}`, HERE)).toThrow(
      new Error('secret was sealed under another master key or is corrupt'),
    );
    expect(() => box.open(good, callbackSeal('signing_secret', 'acc_1'))).toThrow(
      new Error('secret does not open here: it was sealed for another row, or under another master key'),
    );
  });
});

describe('target URLs', () => {
  const strict = { allowInsecure: false };
  const insecure = { allowInsecure: true };

  it('accepts absolute https URLs and normalises them', () => {
    expect(checkTargetUrl('https://Your-App.com/webhooks/conga', 'target_url', strict)).toBe(
      'https://your-app.com/webhooks/conga',
    );
  });

  it('refuses http, other schemes, relative URLs, credentials and local hosts unless insecure', () => {
    for (const url of [
      'http://your-app.com/x',
      'ftp://x.com/',
      'javascript:alert(1)',
      '/relative',
      'https://u:p@x.com/',
    ]) {
      expect(() => checkTargetUrl(url, 'target_url', strict)).toThrow(CountersignError);
    }
    for (const url of ['https://localhost/x', 'https://127.0.0.1/', 'https://10.0.0.1/', 'https://[::1]/']) {
      expect(() => checkTargetUrl(url, 'target_url', strict)).toThrow(/target_url/);
    }
    expect(checkTargetUrl('http://127.0.0.1:9000/x', 'target_url', insecure)).toBe('http://127.0.0.1:9000/x');
    expect(() => checkTargetUrl('https://u:p@x.com/', 'target_url', insecure)).toThrow(/credentials/);
  });
});

describe('responses and errors', () => {
  it('classifies 2xx as delivered, 410 as gone and everything else as retry', () => {
    expect([200, 204, 299].map(classifyStatus)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(classifyStatus(410)).toBe('gone');
    expect([301, 400, 404, 429, 500, 503].map(classifyStatus).every((o) => o === 'retry')).toBe(true);
  });

  it('describes transport failures in plain words', () => {
    expect(describeSendError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe('connection refused');
    expect(describeSendError(Object.assign(new Error('x'), { name: 'TimeoutError' }))).toBe('timeout');
    expect(describeSendError(Object.assign(new Error('x'), { code: 'ENOTFOUND' }))).toBe('dns lookup failed');
  });
});

describe('time, ids and configuration', () => {
  it('formats seed timestamps to the second and parses RFC 3339 only', () => {
    expect(toIsoSeconds(Date.parse('2025-12-18T12:00:00.789Z'))).toBe('2025-12-18T12:00:00Z');
    expect(toIsoSeconds(Date.parse('2025-12-18T12:00:00.001Z'))).toBe('2025-12-18T12:00:00Z');
    expect(toIsoSeconds(Date.parse('2025-12-18T12:00:01.000Z'))).toBe('2025-12-18T12:00:01Z');
    expect(toIsoSeconds(-1)).toBe('1969-12-31T23:59:59Z');
    expect(toIsoSeconds(8.64e15)).toBe('+275760-09-13T00:00:00Z');
    expect(parseTimestamp('2025-12-18T14:30:05Z')).toBe(Date.parse('2025-12-18T14:30:05Z'));
    expect(parseTimestamp('2025-12-18T14:30:05+02:00')).toBe(Date.parse('2025-12-18T12:30:05Z'));
    expect(parseTimestamp('18/12/2025')).toBeUndefined();
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('soon')).toBeUndefined();
  });

  it('draws the ids’ randomness uniformly from a pooled CSPRNG, across pool refills', () => {
    const buckets = new Array<number>(32).fill(0);
    const draws = 320_000; // 312 refills of the 1,024-draw pool
    const seen = new Set<number>();
    let outOfRange = 0;
    for (let i = 0; i < draws; i++) {
      const value = pooledRandom();
      if (!(value >= 0 && value < 1)) outOfRange++;
      else buckets[Math.floor(value * 32)] = (buckets[Math.floor(value * 32)] ?? 0) + 1;
      if (i < 5_000) seen.add(value);
    }
    expect(outOfRange).toBe(0);
    // 10,000 expected per bucket, standard deviation about 98: ±1,000 is ten of them.
    for (const count of buckets) expect(Math.abs(count - draws / 32)).toBeLessThan(1_000);
    expect(seen.size).toBeGreaterThan(4_990);
  });

  it('makes prefixed ids that sort in creation order', () => {
    const ids = Array.from({ length: 1000 }, () => newId('sub'));
    expect([...ids].sort()).toEqual(ids);
    expect(ids.every((id) => isId('sub', id))).toBe(true);
    expect(isId('sub', 'sub_001')).toBe(false);
  });

  it('reads flags over environment over defaults', () => {
    const fromEnv = loadConfig(
      {},
      { PORT: '9000', DATABASE_URL: 'postgres://u@h/db', COUNTERSIGN_RETRY_SCHEDULE: '0,1s,2s' },
    );
    expect(fromEnv.port).toBe(9000);
    expect(fromEnv.database.kind).toBe('postgres');
    expect(fromEnv.dispatcher.retrySchedule).toEqual([0, 1000, 2000]);
    const flagged = loadConfig(
      { port: '9100', database: 'sqlite:./x.db', 'allow-insecure-targets': true },
      { PORT: '9000' },
    );
    expect(flagged.port).toBe(9100);
    expect(flagged.database.kind).toBe('sqlite');
    expect(flagged.allowInsecureTargets).toBe(true);
    const defaults = loadConfig({}, {});
    expect(defaults.port).toBe(8080);
    expect(defaults.database).toMatchObject({ kind: 'sqlite' });
    expect(defaults.dispatcher.connectTimeoutMs).toBe(5000);
    expect(defaults.dispatcher.requestTimeoutMs).toBe(15000);
    expect(() => loadConfig({}, { PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({}, { DATABASE_URL: 'mysql://x' })).toThrow(/mysql/);
    expect(defaults.metricsPort).toBeUndefined();
    expect(loadConfig({ 'metrics-port': '9464' }, { COUNTERSIGN_METRICS_PORT: '9000' }).metricsPort).toBe(9464);
    expect(() => loadConfig({}, { COUNTERSIGN_METRICS_PORT: 'x' })).toThrow(/COUNTERSIGN_METRICS_PORT/);
    expect(defaults.heapGrowthPercent).toBe(50);
    expect(loadConfig({}, { COUNTERSIGN_HEAP_GROWTH: '0' }).heapGrowthPercent).toBe(0);
    expect(() => loadConfig({}, { COUNTERSIGN_HEAP_GROWTH: '-5' })).toThrow(/COUNTERSIGN_HEAP_GROWTH/);
  });
});

describe('churn-free collections', () => {
  // Operations: add item n, delete item n, or a sweep that deletes every item whose number is odd.
  const operations = fc.array(
    fc.oneof(
      fc.record({ op: fc.constant('add' as const), n: fc.nat(30) }),
      fc.record({ op: fc.constant('delete' as const), n: fc.nat(30) }),
      fc.record({ op: fc.constant('sweep' as const), n: fc.constant(0) }),
    ),
    { maxLength: 200 },
  );

  it('SlotList holds what a Set would, and a sweep may delete the item it visits', () => {
    fc.assert(
      fc.property(operations, (ops) => {
        const items = Array.from({ length: 31 }, (_, n) => ({ n, slot: -1 }));
        const list = new SlotList<{ n: number; slot: number }>();
        const reference = new Set<number>();
        for (const { op, n } of ops) {
          if (op === 'add') {
            list.add(items[n] as { n: number; slot: number });
            reference.add(n);
          } else if (op === 'delete') {
            list.delete(items[n] as { n: number; slot: number });
            reference.delete(n);
          } else {
            const visited: number[] = [];
            list.forEach((item) => {
              visited.push(item.n);
              if (item.n % 2 === 1) list.delete(item);
            });
            // Every item is visited exactly once, even though deletes move items between slots.
            expect(visited.sort((a, b) => a - b)).toEqual([...reference].sort((a, b) => a - b));
            for (const n of [...reference]) if (n % 2 === 1) reference.delete(n);
          }
          expect(list.size).toBe(reference.size);
        }
        const held: number[] = [];
        list.forEach((item) => {
          held.push(item.n);
        });
        expect(held.sort((a, b) => a - b)).toEqual([...reference].sort((a, b) => a - b));
        for (const item of items) expect(item.slot === -1).toBe(!reference.has(item.n));
      }),
    );
  });

  it('GenerationCache keeps the last generation whole, what is still used, and at most two generations', () => {
    const cache = new GenerationCache<number, string>(100);
    for (let i = 0; i < 1000; i++) {
      cache.set(i, `v${i}`);
      // Key 7 is read after every insert, so it always moves forward before its generation goes.
      expect(cache.get(7)).toBe(i >= 7 ? 'v7' : undefined);
    }
    for (let i = 900; i < 1000; i++) expect(cache.get(i)).toBe(`v${i}`);
    let held = 0;
    for (let i = 0; i < 1000; i++) if (cache.get(i) !== undefined) held++;
    expect(held).toBeLessThanOrEqual(200);
    expect(cache.get(500)).toBeUndefined();
    cache.clear();
    expect(cache.get(999)).toBeUndefined();
  });
});

describe('heap tuning', () => {
  it('turns pretenuring off and sets the growth, unless node was given those flags', () => {
    expect(heapFlags(50, [])).toEqual(['--no-allocation-site-pretenuring', '--heap-growing-percent=50']);
    expect(heapFlags(0, [])).toEqual(['--no-allocation-site-pretenuring']);
    expect(heapFlags(50, ['--heap_growing_percent=80', '--allocation-site-pretenuring'])).toEqual([]);
    expect(heapFlags(50, ['--max-old-space-size=512', ''])).toEqual([
      '--no-allocation-site-pretenuring',
      '--heap-growing-percent=50',
    ]);
  });
});
