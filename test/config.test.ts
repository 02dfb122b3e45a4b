// loadConfig with plain values: every setting has a flag and a variable, flags win over the
// environment, and every bounded setting refuses zero, absurd and malformed values with a message
// naming the flag or variable, the allowed range and the value given.
import { describe, expect, it } from 'vitest';
import {
  type Config,
  ConfigError,
  loadConfig,
  MAX_RETRY_ENTRIES,
  MAX_TIMER_MS,
  parseBoundedDuration,
  RATE_LIMIT_WINDOW_RANGE,
  RETRY_ENTRY_RANGE,
  SETTINGS,
  TOKEN_EXPIRY_RANGE,
} from '../src/config.js';

/** A valid value for each setting other than its default, and where it lands in Config. */
const SAMPLES: Record<string, { value: string; read: (c: Config) => unknown; expected: unknown }> = {
  port: { value: '9001', read: (c) => c.port, expected: 9001 },
  host: { value: '127.0.0.2', read: (c) => c.host, expected: '127.0.0.2' },
  'public-url': {
    value: 'https://webhooks.example.com/',
    read: (c) => c.publicUrl,
    expected: 'https://webhooks.example.com',
  },
  database: {
    value: 'postgres://u@h/db',
    read: (c) => c.database,
    expected: { kind: 'postgres', url: 'postgres://u@h/db' },
  },
  'metrics-port': { value: '9464', read: (c) => c.metricsPort, expected: 9464 },
  'allow-insecure-targets': { value: 'true', read: (c) => c.allowInsecureTargets, expected: true },
  'allowed-target-cidrs': { value: '10.0.0.0/8', read: (c) => c.allowedTargetCidrs, expected: ['10.0.0.0/8'] },
  'rate-limit': { value: '600/1m', read: (c) => c.rateLimit, expected: { max: 600, windowMs: 60_000 } },
  'master-key-file': { value: '/etc/countersign/key', read: (c) => c.masterKeyFile, expected: '/etc/countersign/key' },
  'portal-frame-ancestors': {
    value: "'self'  https://app.example.com",
    read: (c) => c.portalFrameAncestors,
    expected: "'self' https://app.example.com",
  },
  'retry-schedule': { value: '0,1s,2m', read: (c) => c.dispatcher.retrySchedule, expected: [0, 1000, 120_000] },
  'connect-timeout': { value: '2s', read: (c) => c.dispatcher.connectTimeoutMs, expected: 2000 },
  'request-timeout': { value: '20s', read: (c) => c.dispatcher.requestTimeoutMs, expected: 20_000 },
  'max-concurrency': { value: '64', read: (c) => c.dispatcher.maxConcurrency, expected: 64 },
  'origin-concurrency': { value: '8', read: (c) => c.dispatcher.perOriginConcurrency, expected: 8 },
  'claim-batch': { value: '50', read: (c) => c.dispatcher.claimBatchSize, expected: 50 },
  lease: { value: '30s', read: (c) => c.dispatcher.leaseMs, expected: 30_000 },
  'poll-interval': { value: '250ms', read: (c) => c.dispatcher.pollIntervalMs, expected: 250 },
  'disable-after': { value: '2d', read: (c) => c.dispatcher.disableAfterFailingMs, expected: 2 * 86_400_000 },
  'shutdown-grace': { value: '3s', read: (c) => c.dispatcher.shutdownGraceMs, expected: 3000 },
  'circuit-failures': { value: '3', read: (c) => c.dispatcher.circuit.failureThreshold, expected: 3 },
  'circuit-open': { value: '1m', read: (c) => c.dispatcher.circuit.openMs, expected: 60_000 },
  'circuit-max-open': { value: '1h', read: (c) => c.dispatcher.circuit.maxOpenMs, expected: 3_600_000 },
  'no-dispatcher': { value: 'true', read: (c) => c.dispatcher.enabled, expected: false },
  'heap-growth': { value: '0', read: (c) => c.heapGrowthPercent, expected: 0 },
  'inbound-timeout': { value: '30s', read: (c) => c.inboundTimeoutMs, expected: 30_000 },
  'audit-link-ttl': { value: '90d', read: (c) => c.auditLinkTtlMs, expected: 90 * 86_400_000 },
  'public-hosts': {
    value: 'Portal.Example.com, api.example.com:8443',
    read: (c) => c.publicHosts,
    expected: ['portal.example.com', 'api.example.com:8443'],
  },
  'erasure-rebuild-interval': { value: '10m', read: (c) => c.erasureRebuildEveryMs, expected: 600_000 },
  'allowed-target-ports': {
    value: '443, 8443-8444',
    read: (c) => c.allowedTargetPorts,
    expected: [
      [443, 443],
      [8443, 8444],
    ],
  },
  'max-batch-deliveries': { value: '500', read: (c) => c.maxBatchDeliveries, expected: 500 },
  'max-portal-sessions': { value: '20', read: (c) => c.maxPortalSessions, expected: 20 },
  'max-subscriptions': { value: '50', read: (c) => c.maxSubscriptions, expected: 50 },
  'erasure-rate-limit': { value: '5/30s', read: (c) => c.erasureRateLimit, expected: { max: 5, windowMs: 30_000 } },
  'log-level': { value: 'debug', read: (c) => c.logLevel, expected: 'debug' },
  'log-format': { value: 'pretty', read: (c) => c.logFormat, expected: 'pretty' },
  'access-log': { value: 'off', read: (c) => c.accessLog, expected: false },
  retention: { value: '7d', read: (c) => c.retentionMs, expected: 7 * 86_400_000 },
};

type DurationSetting = Extract<(typeof SETTINGS)[number], { kind: 'duration' }>;
const DURATIONS = SETTINGS.filter((s): s is DurationSetting => s.kind === 'duration');

describe('loadConfig', () => {
  it('works with no flags and no environment, and gives the documented defaults', () => {
    const config = loadConfig({}, {});
    expect(config.port).toBe(8080);
    expect(config.host).toBe('0.0.0.0');
    expect(config.metricsPort).toBeUndefined();
    expect(config.logLevel).toBe('info');
    expect(config.logFormat).toBeUndefined();
    expect(config.accessLog).toBe(true);
    expect(config.allowInsecureTargets).toBe(false);
    expect(config.rateLimit).toEqual({ max: 100_000, windowMs: 10_000 });
    expect(config.dispatcher).toMatchObject({
      enabled: true,
      connectTimeoutMs: 5000,
      requestTimeoutMs: 15_000,
      leaseMs: 60_000,
      pollIntervalMs: 1000,
      disableAfterFailingMs: 5 * 86_400_000,
      shutdownGraceMs: 10_000,
    });
    expect(config.dispatcher.retrySchedule).toHaveLength(10);
    // A probe may go unanswered as long as a send may take (connect, then answer) and 5 s more.
    expect(config.dispatcher.circuit).toEqual({
      failureThreshold: 10,
      openMs: 30_000,
      maxOpenMs: 600_000,
      probeTimeoutMs: 25_000,
    });
  });

  it('has a flag and an environment variable for every setting, and the flag wins', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(SETTINGS.map((s) => s.flag).sort());
    const defaults = loadConfig({}, {});
    for (const setting of SETTINGS) {
      const sample = SAMPLES[setting.flag];
      if (!sample) throw new Error(`no sample for ${setting.flag}`);
      expect(sample.read(defaults), setting.flag).not.toEqual(sample.expected);
      expect(sample.read(loadConfig({}, { [setting.variable]: sample.value })), setting.variable).toEqual(
        sample.expected,
      );
      const flagValue = setting.kind === 'switch' ? true : sample.value;
      expect(sample.read(loadConfig({ [setting.flag]: flagValue }, {})), `--${setting.flag}`).toEqual(sample.expected);
    }
    // A flag beats the variable, whatever the variable says.
    expect(loadConfig({ lease: '5s' }, { COUNTERSIGN_LEASE: '0' }).dispatcher.leaseMs).toBe(5000);
    expect(loadConfig({ 'access-log': 'on' }, { COUNTERSIGN_ACCESS_LOG: 'off' }).accessLog).toBe(true);
    expect(loadConfig({ 'log-format': 'json' }, { LOG_FORMAT: 'pretty' }).logFormat).toBe('json');
  });

  it('reads the master key from the environment only', () => {
    expect(loadConfig({ 'master-key': 'x' }, {}).masterKey).toBeUndefined();
    expect(loadConfig({}, { COUNTERSIGN_MASTER_KEY: 'abc' }).masterKey).toBe('abc');
  });

  describe.each(DURATIONS.map((s) => [s.flag, s] as const))('the duration --%s', (flag, setting) => {
    const [min, max] = setting.range;

    it('refuses 0 and a value past its range, naming the variable, the range and the value', () => {
      expect(() => loadConfig({}, { [setting.variable]: '0' })).toThrow(ConfigError);
      const zero = errorOf(() => loadConfig({}, { [setting.variable]: '0' }));
      expect(zero).toMatch(new RegExp(`^${setting.variable} must be a duration from \\S+ to \\S+, got "0"$`));
      const absurd = `${Math.ceil(max / 86_400_000) + 1}d`;
      expect(errorOf(() => loadConfig({}, { [setting.variable]: absurd }))).toContain(`got "${absurd}"`);
      expect(errorOf(() => loadConfig({ [flag]: absurd }, {}))).toMatch(new RegExp(`^--${flag} must be a duration`));
    });

    it('refuses a malformed, negative or non-finite value', () => {
      for (const bad of ['soon', '-5s', '5 weeks', '1e3', '9'.repeat(400), '']) {
        expect(() => loadConfig({ [flag]: bad }, {}), bad).toThrow(new RegExp(`^--${flag} must be a duration`));
      }
    });

    it('takes the ends of its range', () => {
      const read = SAMPLES[flag]?.read as (c: Config) => unknown;
      expect(read(loadConfig({ [flag]: `${min}ms` }, {}))).toBe(min);
      expect(read(loadConfig({ [flag]: `${max}ms` }, {}))).toBe(max);
      expect(() => loadConfig({ [flag]: `${max + 1}ms` }, {})).toThrow(ConfigError);
      if (min > 0) expect(() => loadConfig({ [flag]: `${min - 1}ms` }, {})).toThrow(ConfigError);
    });
  });

  it('names the ranges in the words of the README: lease from 1s to 1h', () => {
    expect(errorOf(() => loadConfig({}, { COUNTERSIGN_LEASE: '0' }))).toBe(
      'COUNTERSIGN_LEASE must be a duration from 1s to 1h, got "0"',
    );
  });

  it('keeps every duration that becomes a timer below the 2^31-1 ms at which Node fires timers at once', () => {
    const timers = ['connect-timeout', 'request-timeout', 'lease', 'poll-interval', 'shutdown-grace'];
    for (const setting of DURATIONS.filter((s) => timers.includes(s.flag))) {
      expect(setting.range[1], setting.flag).toBeLessThanOrEqual(MAX_TIMER_MS);
    }
    expect(RETRY_ENTRY_RANGE[1]).toBeLessThanOrEqual(MAX_TIMER_MS);
    expect(RATE_LIMIT_WINDOW_RANGE[1]).toBeLessThanOrEqual(MAX_TIMER_MS);
  });

  it('takes 0 in a retry schedule ("at once") but refuses an absurd, malformed or missing entry, and too many', () => {
    expect(loadConfig({}, { COUNTERSIGN_RETRY_SCHEDULE: '0' }).dispatcher.retrySchedule).toEqual([0]);
    expect(loadConfig({}, { COUNTERSIGN_RETRY_SCHEDULE: '0, 5s ,7d' }).dispatcher.retrySchedule).toEqual([
      0,
      5000,
      7 * 86_400_000,
    ]);
    expect(errorOf(() => loadConfig({}, { COUNTERSIGN_RETRY_SCHEDULE: '0,8d' }))).toBe(
      'COUNTERSIGN_RETRY_SCHEDULE entry 2 must be a duration from 0 to 7d, got "8d"',
    );
    expect(errorOf(() => loadConfig({ 'retry-schedule': '0,,5s' }, {}))).toMatch(/^--retry-schedule entry 2 /);
    expect(errorOf(() => loadConfig({}, { COUNTERSIGN_RETRY_SCHEDULE: `0,${'9'.repeat(400)}` }))).toMatch(/entry 2/);
    const fifty = Array.from({ length: MAX_RETRY_ENTRIES }, () => '1s').join(',');
    expect(loadConfig({}, { COUNTERSIGN_RETRY_SCHEDULE: fifty }).dispatcher.retrySchedule).toHaveLength(50);
    expect(errorOf(() => loadConfig({}, { COUNTERSIGN_RETRY_SCHEDULE: `${fifty},1s` }))).toBe(
      'COUNTERSIGN_RETRY_SCHEDULE may have at most 50 entries, got 51',
    );
  });

  it('refuses a rate-limit window of 0 or past a day, and a malformed limit', () => {
    expect(loadConfig({}, { COUNTERSIGN_RATE_LIMIT: 'off' }).rateLimit.max).toBe(0);
    expect(loadConfig({}, { COUNTERSIGN_RATE_LIMIT: '50' }).rateLimit).toEqual({ max: 50, windowMs: 1000 });
    expect(errorOf(() => loadConfig({}, { COUNTERSIGN_RATE_LIMIT: '600/0s' }))).toBe(
      `COUNTERSIGN_RATE_LIMIT's window must be a duration from 1s to 1d, got "0s"`,
    );
    expect(errorOf(() => loadConfig({ 'rate-limit': '600/2d' }, {}))).toMatch(/^--rate-limit's window .* got "2d"$/);
    for (const bad of ['lots', '600/1m/1h', '-1/1s', '1e3/1s']) {
      expect(() => loadConfig({}, { COUNTERSIGN_RATE_LIMIT: bad }), bad).toThrow(
        /^COUNTERSIGN_RATE_LIMIT must look like/,
      );
    }
  });

  it('reads public hosts as host or host:port, and refuses a URL, a path or credentials', () => {
    expect(loadConfig({}, {}).publicHosts).toEqual([]);
    for (const given of [
      'https://portal.example.com',
      'portal.example.com/ui',
      'me@portal.example.com',
      'a b',
      'x.example,',
    ]) {
      expect(errorOf(() => loadConfig({}, { COUNTERSIGN_PUBLIC_HOSTS: given }))).toMatch(
        /^COUNTERSIGN_PUBLIC_HOSTS must be a comma-separated list of host names, each with an optional :port/,
      );
    }
  });

  it('reads the target ports as ports and ranges, and refuses anything else, naming the part', () => {
    expect(loadConfig({}, {}).allowedTargetPorts).toEqual([
      [80, 80],
      [443, 443],
      [1024, 65_535],
    ]);
    for (const [given, part] of [
      ['0', '0'],
      ['443,70000', '70000'],
      ['9000-8000', '9000-8000'],
      ['443,,80', ''],
      ['https', 'https'],
    ]) {
      expect(errorOf(() => loadConfig({}, { COUNTERSIGN_ALLOWED_TARGET_PORTS: given as string }))).toBe(
        `COUNTERSIGN_ALLOWED_TARGET_PORTS must be a comma-separated list of ports and ranges: "${part}" is not a port (1 to 65535) or a range of them such as 1024-65535`,
      );
    }
  });

  it('refuses an unknown log level in its own words, listing the levels', () => {
    expect(errorOf(() => loadConfig({}, { LOG_LEVEL: 'loud' }))).toBe(
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    );
    expect(errorOf(() => loadConfig({ 'log-level': 'verbose' }, {}))).toMatch(/^--log-level must be one of .*silent/);
    expect(loadConfig({}, { LOG_LEVEL: 'WARN' }).logLevel).toBe('warn');
  });

  it('reads LOG_FORMAT as json or pretty, and leaves it to the terminal when unset', () => {
    expect(loadConfig({}, { LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(loadConfig({}, { LOG_FORMAT: '' }).logFormat).toBeUndefined();
    expect(errorOf(() => loadConfig({}, { LOG_FORMAT: 'xml' }))).toBe('LOG_FORMAT must be json or pretty, got "xml"');
  });

  it('reads COUNTERSIGN_ACCESS_LOG as on/off or true/false', () => {
    for (const [value, expected] of [
      ['on', true],
      ['off', false],
      ['true', true],
      ['false', false],
      ['OFF', false],
    ] as const) {
      expect(loadConfig({}, { COUNTERSIGN_ACCESS_LOG: value }).accessLog, value).toBe(expected);
    }
    expect(errorOf(() => loadConfig({ 'access-log': 'sometimes' }, {}))).toMatch(/^--access-log must be on or off/);
  });

  it('refuses integers written in other notations, or empty', () => {
    for (const bad of ['0x1F90', '8e3', '', ' ', '80.0', '-1']) {
      expect(() => loadConfig({ port: bad }, {}), JSON.stringify(bad)).toThrow(
        /^--port must be an integer from 0 to 65535/,
      );
    }
    expect(loadConfig({}, { PORT: ' 9000 ' }).port).toBe(9000);
  });

  it('names the variable when the database URL has an unsupported scheme', () => {
    expect(errorOf(() => loadConfig({}, { DATABASE_URL: 'mysql://x' }))).toMatch(/^DATABASE_URL: .*"mysql:"/);
  });

  it('takes COUNTERSIGN_PUBLIC_URL as an http(s) origin and refuses a path, query, fragment or credentials', () => {
    const url = (value: string) => loadConfig({}, { COUNTERSIGN_PUBLIC_URL: value }).publicUrl;
    expect(loadConfig({}, {}).publicUrl).toBeUndefined();
    expect(url('http://10.0.0.5:8080')).toBe('http://10.0.0.5:8080');
    expect(url(' https://Webhooks.Example.com:443/ ')).toBe('https://webhooks.example.com');
    for (const bad of [
      'webhooks.example.com',
      '/ui',
      'ftp://webhooks.example.com',
      'https://webhooks.example.com/countersign',
      'https://webhooks.example.com/?a=1',
      'https://webhooks.example.com/?',
      'https://webhooks.example.com/#top',
      'https://user:pass@webhooks.example.com',
    ]) {
      expect(
        errorOf(() => url(bad)),
        bad,
      ).toBe(
        `COUNTERSIGN_PUBLIC_URL must be an absolute http(s) URL with no path, query or fragment, such as https://webhooks.example.com, got "${bad}"`,
      );
    }
    expect(errorOf(() => loadConfig({ 'public-url': 'x' }, {}))).toMatch(/^--public-url must be/);
  });

  it('bounds token expiry: 1s to 3650d', () => {
    expect(parseBoundedDuration('--expires-in', '30d', TOKEN_EXPIRY_RANGE)).toBe(30 * 86_400_000);
    expect(() => parseBoundedDuration('--expires-in', '0', TOKEN_EXPIRY_RANGE)).toThrow(
      '--expires-in must be a duration from 1s to 3650d, got "0"',
    );
    expect(() => parseBoundedDuration('--expires-in', '3651d', TOKEN_EXPIRY_RANGE)).toThrow(/got "3651d"/);
  });
});

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected an error');
}
