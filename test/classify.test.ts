// What an attempt's answer means (src/domain/classify.ts): the status code's outcome, which
// statuses' Retry-After is honoured, and the words the attempt log shows for a transport failure.
// Pure functions; the dispatcher's use of them is in the delivery tests.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyStatus, describeSendError, honoursRetryAfter } from '../src/domain/classify.js';

/** An error as Node or undici throws it: a message, and a code on it or on its cause. */
const failure = (message: string, fields: { code?: string; name?: string; cause?: unknown }) =>
  Object.assign(new Error(message), fields);

describe('classifyStatus', () => {
  it('delivers on exactly 200 to 299', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999 }), (status) => {
        const expected = status >= 200 && status <= 299 ? 'delivered' : status === 410 ? 'gone' : 'retry';
        expect(classifyStatus(status)).toBe(expected);
      }),
    );
    // The edges, named.
    expect([199, 200, 299, 300].map(classifyStatus)).toEqual(['retry', 'delivered', 'delivered', 'retry']);
    expect([100, 101, 0].map(classifyStatus)).toEqual(['retry', 'retry', 'retry']);
  });

  it('gives up on 410 only, and retries every other failure', () => {
    expect(classifyStatus(410)).toBe('gone');
    expect([404, 409, 411, 429, 500, 502, 503].map(classifyStatus)).toEqual(Array(7).fill('retry'));
  });
});

describe('honoursRetryAfter', () => {
  it('honours Retry-After on 429 and 503 only', () => {
    expect(honoursRetryAfter(429)).toBe(true);
    expect(honoursRetryAfter(503)).toBe(true);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999 }), (status) => {
        expect(honoursRetryAfter(status)).toBe(status === 429 || status === 503);
      }),
    );
    expect([200, 410, 428, 430, 500, 502, 504].some(honoursRetryAfter)).toBe(false);
  });
});

describe('describeSendError', () => {
  it('names each known network failure in plain words, the code on the error or on its cause', () => {
    const named: Array<[string, string]> = [
      ['ECONNREFUSED', 'connection refused'],
      ['ECONNRESET', 'connection reset'],
      ['UND_ERR_SOCKET', 'connection reset'],
      ['ENOTFOUND', 'dns lookup failed'],
      ['EAI_AGAIN', 'dns lookup failed'],
      ['UND_ERR_CONNECT_TIMEOUT', 'connect timeout'],
      ['UND_ERR_HEADERS_TIMEOUT', 'timeout'],
      ['UND_ERR_BODY_TIMEOUT', 'timeout'],
    ];
    for (const [code, words] of named) {
      expect(describeSendError(failure('raw text', { code })), code).toBe(words);
      // fetch() wraps the socket's error: `TypeError: fetch failed` with the code on its cause.
      expect(describeSendError(failure('fetch failed', { cause: { code } })), `cause ${code}`).toBe(words);
    }
  });

  it('calls an aborted or timed-out request a timeout', () => {
    expect(describeSendError(failure('The operation was aborted', { name: 'AbortError' }))).toBe('timeout');
    expect(describeSendError(failure('The operation timed out', { name: 'TimeoutError' }))).toBe('timeout');
    expect(describeSendError(failure('bad', { name: 'TypeError' }))).toBe('bad');
  });

  it('shows the address guard’s own refusal, shortened to 500 characters', () => {
    const text = 'ssrf: internal.example resolves to 10.0.0.5, private address';
    expect(describeSendError(failure(text, { code: 'ERR_SSRF_REFUSED' }))).toBe(text);
    expect(describeSendError({ code: 'ERR_SSRF_REFUSED' })).toBe('ssrf: refused');
    const long = `ssrf: ${'a'.repeat(600)}.example resolves to 10.0.0.5, private address`;
    expect(describeSendError(failure(long, { code: 'ERR_SSRF_REFUSED' }))).toBe(long.slice(0, 500));
  });

  it('calls a certificate or TLS failure a TLS error, with its code', () => {
    for (const code of [
      'ERR_TLS_HANDSHAKE_TIMEOUT',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'CERT_HAS_EXPIRED',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'ERR_SSL_WRONG_VERSION_NUMBER',
    ]) {
      expect(describeSendError(failure('handshake failed', { code })), code).toBe(`tls error (${code})`);
      expect(describeSendError(failure('fetch failed', { cause: { code } })), `cause ${code}`).toBe(
        `tls error (${code})`,
      );
    }
    // Only at the start for the TLS and SSL families.
    expect(describeSendError(failure('broken pipe', { code: 'X_ERR_TLS' }))).toBe('X_ERR_TLS: broken pipe');
    expect(describeSendError(failure('broken pipe', { code: 'X_ERR_SSL' }))).toBe('X_ERR_SSL: broken pipe');
  });

  it('shows any other failure as its code and message, or its message alone, at most 500 characters', () => {
    expect(describeSendError(failure('write EPIPE', { code: 'EPIPE' }))).toBe('EPIPE: write EPIPE');
    expect(describeSendError(failure('fetch failed', { cause: { code: 'EHOSTUNREACH' } }))).toBe(
      'EHOSTUNREACH: fetch failed',
    );
    expect(describeSendError(new Error('invalid URL'))).toBe('invalid URL');
    const long = 'x'.repeat(800);
    expect(describeSendError(failure(long, { code: 'EPIPE' }))).toBe(`EPIPE: ${long}`.slice(0, 500));
    expect(describeSendError(new Error(long))).toBe(long.slice(0, 500));
  });

  it('describes whatever else was thrown without throwing itself', () => {
    expect(describeSendError('boom')).toBe('boom');
    expect(describeSendError(42)).toBe('42');
    expect(describeSendError(null)).toBe('null');
    expect(describeSendError(undefined)).toBe('undefined');
    expect(describeSendError({ cause: null })).toBe('[object Object]');
  });
});
