// Input checks that are pure functions, with plain values: RFC 3339 timestamps that must name a
// real instant (never shifted into another day), and target URLs that must mean what they say
// (nothing the WHATWG parser would quietly repair).
import { describe, expect, it } from 'vitest';
import { checkTargetUrl } from '../src/domain/target-url.js';
import { parseTimestamp } from '../src/domain/time.js';

describe('parseTimestamp', () => {
  it('refuses days a month does not have instead of carrying them into the next month', () => {
    for (const value of [
      '2025-02-30T00:00:00Z',
      '2025-02-29T00:00:00Z',
      '1900-02-29T00:00:00Z',
      '0100-02-29T00:00:00Z',
      '2025-04-31T00:00:00Z',
      '2025-06-31T23:59:59+02:00',
      '2025-11-31T00:00:00.500Z',
    ]) {
      expect(parseTimestamp(value), value).toBeUndefined();
    }
  });

  it('accepts February 29 of leap years only, centuries divisible by 400 and years before 100 included', () => {
    expect(parseTimestamp('2024-02-29T00:00:00Z')).toBe(Date.UTC(2024, 1, 29));
    expect(parseTimestamp('2000-02-29T12:00:00Z')).toBe(Date.UTC(2000, 1, 29, 12));
    expect(parseTimestamp('0004-02-29T00:00:00Z')).toBe(Date.parse('0004-02-29T00:00:00Z'));
    expect(parseTimestamp('2100-02-29T00:00:00Z')).toBeUndefined();
  });

  it('refuses hour 24 instead of reading it as the next midnight, and every other field out of range', () => {
    for (const value of [
      '2025-12-18T24:00:00Z',
      '2025-12-31T24:00:00.000+01:00',
      '2025-13-01T00:00:00Z',
      '2025-00-10T00:00:00Z',
      '2025-01-00T00:00:00Z',
      '2025-01-32T00:00:00Z',
      '2025-12-18T23:60:00Z',
      '2025-12-18T23:59:60Z',
      '2025-12-18T12:00:00+24:00',
      '2025-12-18T12:00:00+05:60',
      '2025-12-18T12:00:00-99:00',
    ]) {
      expect(parseTimestamp(value), value).toBeUndefined();
    }
    expect(parseTimestamp('2025-12-18T23:59:59Z')).toBe(Date.UTC(2025, 11, 18, 23, 59, 59));
    expect(parseTimestamp('2025-12-19T00:00:00Z')).toBe(Date.UTC(2025, 11, 19));
  });

  it('keeps fractions and offsets exact on real instants and refuses impossible ones that carry them', () => {
    expect(parseTimestamp('2025-02-30T10:00:00.250+02:00')).toBeUndefined();
    const second = Date.UTC(2025, 11, 18, 14, 30, 5);
    expect(parseTimestamp('2025-12-18T14:30:05.5Z')).toBe(second + 500);
    expect(parseTimestamp('2025-12-18T14:30:05.25Z')).toBe(second + 250);
    expect(parseTimestamp('2025-12-18T14:30:05.000Z')).toBe(second);
    expect(parseTimestamp('2025-12-18T14:30:05.123456789Z')).toBe(second + 123);
    expect(parseTimestamp('2025-12-18t14:30:05.999999z')).toBe(second + 999);
    const noon = Date.UTC(2025, 11, 18, 12);
    expect(parseTimestamp('2025-12-18T14:00:00+02:00')).toBe(noon);
    expect(parseTimestamp('2025-12-18T06:30:00-05:30')).toBe(noon);
    expect(parseTimestamp('2025-12-19T11:59:00+23:59')).toBe(noon);
    expect(parseTimestamp('2025-12-17T12:01:00-23:59')).toBe(noon);
    expect(parseTimestamp('2025-12-18T12:00:00-00:00')).toBe(noon);
    // An offset may carry a valid time across a leap day or a year's end.
    expect(parseTimestamp('2024-02-29T23:30:00-01:00')).toBe(Date.UTC(2024, 2, 1, 0, 30));
    expect(parseTimestamp('2026-01-01T00:30:00+01:00')).toBe(Date.UTC(2025, 11, 31, 23, 30));
    for (const malformed of ['2025-12-18T12:00:00.Z', '2025-12-18T12:00:00.1234567890Z', '2025-12-18T12:00:00+0200']) {
      expect(parseTimestamp(malformed), malformed).toBeUndefined();
    }
  });
});

describe('checkTargetUrl', () => {
  const strict = { allowInsecure: false };

  it.each([
    'https:///your-app.com/hooks',
    'https:/your-app.com/hooks',
    'https:your-app.com/hooks',
    'HTTPS:your-app.com',
  ])('refuses %s, whose authority is empty, though the WHATWG parser reads it as https://your-app.com/', (url) => {
    expect(() => checkTargetUrl(url, 'target_url', strict)).toThrow(/^target_url: must name a host/);
  });

  it.each([
    ['https://your-app.com/ho\toks', 'a tab'],
    ['https://your-app.com/ho\noks', 'a line feed'],
    ['https://your-\r\napp.com/hooks', 'CR LF in the host'],
    [' https://your-app.com/hooks', 'a leading space'],
    ['https://your-app.com/hooks ', 'a trailing space'],
    ['https://your-app.com/my hooks', 'a space in the path'],
    ['https://your-app.com/\u00a0', 'a no-break space'],
    ['https://your-app.com/\u2028', 'a line separator'],
    ['https://your-app.com/\u0000', 'NUL'],
    ['https://your-app.com/\u007f', 'DEL'],
    ['https://your-app.com/\u0085', 'a C1 control'],
  ])('refuses %j (%s) rather than let the parser strip or encode it', (url) => {
    expect(() => checkTargetUrl(url, 'target_url', strict)).toThrow(
      'target_url: must not contain whitespace or control characters',
    );
  });

  it('refuses backslashes, which the WHATWG parser reads as "/", and keeps percent-encoded ones', () => {
    for (const url of ['https:\\\\your-app.com\\hooks', 'https://your-app.com\\hooks', 'https://your-app.com/a\\b']) {
      expect(() => checkTargetUrl(url, 'callbackUrl', strict), url).toThrow(
        /^callbackUrl: must not contain backslashes/,
      );
    }
    expect(checkTargetUrl('https://your-app.com/a%5Cb', 'callbackUrl', strict)).toBe('https://your-app.com/a%5Cb');
    expect(checkTargetUrl('https://your-app.com:8443/my%20hooks?x=1#top', 'target_url', strict)).toBe(
      'https://your-app.com:8443/my%20hooks?x=1#top',
    );
  });
});
