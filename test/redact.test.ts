// Known secrets out of a receiver's answer, in the forms an echo puts them in.
import { describe, expect, it } from 'vitest';
import { MIN_REDACTED_LENGTH, REDACTED, redactHeaders, redactSecrets } from '../src/domain/redact.js';

describe('redactSecrets', () => {
  const secret = 'tok "sec/ret"+1';

  it('replaces a secret as sent, JSON-escaped and percent-encoded, every time it occurs', () => {
    const echoed = [secret, JSON.stringify(secret), encodeURIComponent(secret), `a${secret}b${secret}`].join(' | ');
    const out = redactSecrets(echoed, [secret]);
    expect(out).toBe(`${REDACTED} | "${REDACTED}" | ${REDACTED} | a${REDACTED}b${REDACTED}`);
  });

  it('replaces the start of a secret that the excerpt’s cut left at its end, and only there', () => {
    expect(redactSecrets(`body: ${secret.slice(0, 6)}`, [secret])).toBe(`body: ${REDACTED}`);
    expect(redactSecrets(`${secret.slice(0, 6)} and more`, [secret])).toBe(`${secret.slice(0, 6)} and more`);
    expect(redactSecrets(`ends with ${secret.slice(0, MIN_REDACTED_LENGTH - 1)}`, [secret])).toBe(
      `ends with ${secret.slice(0, MIN_REDACTED_LENGTH - 1)}`,
    );
  });

  it('leaves text without secrets, and secrets too short to look for, as they are', () => {
    expect(redactSecrets('nothing here', [secret, 'abc'])).toBe('nothing here');
    expect(redactSecrets('abc abc', ['abc'])).toBe('abc abc');
    expect(redactSecrets('anything', [])).toBe('anything');
  });

  it('redacts every header value, lists included', () => {
    expect(
      redactHeaders(
        { 'x-echo': `Bearer ${secret}`, 'set-cookie': ['a=1', `t=${encodeURIComponent(secret)}`], gone: undefined },
        [secret],
      ),
    ).toEqual({ 'x-echo': `Bearer ${REDACTED}`, 'set-cookie': ['a=1', `t=${REDACTED}`], gone: undefined });
  });
});
