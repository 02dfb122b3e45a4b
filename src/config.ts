// One typed configuration, read once: command-line flags win over environment variables, which
// win over defaults. Every setting is listed in SETTINGS with its flag, its variable, its default
// and its allowed range; `countersign serve --help` and the README's table are made from that list,
// and loadConfig checks each value against it, so neither can drift from what the code accepts.
import { parseCidrList } from './domain/address-policy.js';
import { type CircuitSettings, DEFAULT_CIRCUIT_SETTINGS } from './domain/circuit.js';
import { DEFAULT_RETRY_SCHEDULE } from './domain/retry-policy.js';
import { DEFAULT_TARGET_PORTS_TEXT, type PortRange, parsePortRanges } from './domain/target-url.js';
import { parseDuration } from './domain/time.js';
import { LOG_LEVELS, type LogFormat } from './logger.js';
import { type DatabaseLocation, parseDatabaseUrl } from './store/open.js';

export interface Config {
  port: number;
  host: string;
  /** COUNTERSIGN_PUBLIC_URL: the origin clients reach the API at (portal links), without a trailing slash. */
  publicUrl: string | undefined;
  /** COUNTERSIGN_PUBLIC_HOSTS: hosts whose requests get links naming them (without a public URL). */
  publicHosts: string[];
  /** `worker` only: serve /healthz, /readyz and /metrics on this port (off when undefined). */
  metricsPort: number | undefined;
  database: DatabaseLocation;
  databaseUrl: string;
  allowInsecureTargets: boolean;
  /** COUNTERSIGN_ALLOWED_TARGET_CIDRS: canonical CIDRs the SSRF guard lets through (internal receivers). */
  allowedTargetCidrs: string[];
  /** COUNTERSIGN_ALLOWED_TARGET_PORTS: the ports targets may use. */
  allowedTargetPorts: PortRange[];
  masterKey: string | undefined;
  masterKeyFile: string;
  logLevel: string;
  /** LOG_FORMAT: undefined lets the logger decide by whether stdout is a terminal. */
  logFormat: LogFormat | undefined;
  /** COUNTERSIGN_ACCESS_LOG: one log line per API request. */
  accessLog: boolean;
  /** COUNTERSIGN_PORTAL_FRAME_ANCESTORS: the portal's CSP frame-ancestors source list. */
  portalFrameAncestors: string;
  /** COUNTERSIGN_HEAP_GROWTH: how far V8 lets the heap grow past what survived a full GC, in %; 0 = V8's own. */
  heapGrowthPercent: number;
  /** COUNTERSIGN_MAX_SUBSCRIPTIONS: live subscriptions per account. */
  maxSubscriptions: number;
  /** COUNTERSIGN_MAX_BATCH_DELIVERIES: deliveries one batch may make. */
  maxBatchDeliveries: number;
  /** COUNTERSIGN_MAX_PORTAL_SESSIONS: portal sessions open at once per account. */
  maxPortalSessions: number;
  /** COUNTERSIGN_ERASURE_RATE_LIMIT: erasures per account per window; max 0 turns it off. */
  erasureRateLimit: { max: number; windowMs: number };
  /** COUNTERSIGN_ERASURE_REBUILD_INTERVAL: SQLite, the shortest time between two file rebuilds owed by erasures. */
  erasureRebuildEveryMs: number;
  /** COUNTERSIGN_INBOUND_TIMEOUT: a client's whole request must arrive within it, and no API connection stays silent longer. */
  inboundTimeoutMs: number;
  /** Per-token API rate limit: `max` requests per `windowMs`; max 0 turns it off. */
  rateLimit: { max: number; windowMs: number };
  dispatcher: DispatcherConfig;
  /** COUNTERSIGN_RETENTION: events older than this are purged (serve, worker); undefined keeps everything. */
  retentionMs: number | undefined;
  /** COUNTERSIGN_AUDIT_LINK_TTL: audit links expire this long after they are given out; undefined: never. */
  auditLinkTtlMs: number | undefined;
}

export interface DispatcherConfig {
  enabled: boolean;
  retrySchedule: number[];
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  maxConcurrency: number;
  perOriginConcurrency: number;
  claimBatchSize: number;
  leaseMs: number;
  pollIntervalMs: number;
  disableAfterFailingMs: number;
  shutdownGraceMs: number;
  /** Each endpoint's circuit breaker; failureThreshold 0 turns it off. */
  circuit: CircuitSettings;
}

/** Command-line values by flag name without the dashes (`lease`, `no-dispatcher`); `true` for a switch. */
export type Flags = Record<string, string | boolean | undefined>;
type Env = Record<string, string | undefined>;

/** An invalid setting or option value. The CLI reports it as a usage error (exit 2). */
export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const MS = 1;
const SECOND = 1000 * MS;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * Node's timers hold a signed 32-bit millisecond count: a longer delay (about 24.8 days) fires at
 * once, with a warning. Every duration used as a timer stays below this.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Allowed ranges, in ms, of the durations that are not one setting each. */
export const RETRY_ENTRY_RANGE = [0, 7 * DAY] as const;
export const MAX_RETRY_ENTRIES = 50;
export const RATE_LIMIT_WINDOW_RANGE = [SECOND, DAY] as const;
export const RATE_LIMIT_MAX = 1_000_000_000;
/** `token create --expires-in` (a stored expiry time, not a timer). */
export const TOKEN_EXPIRY_RANGE = [SECOND, 3650 * DAY] as const;
/** COUNTERSIGN_RETENTION and `purge --older-than` (an age compared with created_at, not a timer). */
export const RETENTION_RANGE = [MINUTE, 3650 * DAY] as const;

export interface Setting {
  /** The flag without its dashes. */
  flag: string;
  variable: string;
  /** The value's placeholder in --help; none for a switch, which takes no value. */
  value?: string;
  /** The default as written on the command line; none when the setting is off or decided elsewhere. */
  default?: string;
  /** What --help says when there is no default to show. */
  unset?: string;
  /** A switch takes no value; integers and durations have a range. */
  kind: 'text' | 'integer' | 'duration' | 'switch';
  /** Integers and durations (ms): the allowed range, checked by loadConfig and shown in --help. */
  range?: readonly [number, number];
  about: string;
}

/** `5000` -> `5s`, `86400000` -> `1d`: the largest unit that divides the span exactly. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const [size, unit] of [
    [DAY, 'd'],
    [HOUR, 'h'],
    [MINUTE, 'm'],
    [SECOND, 's'],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export const DEFAULT_DATABASE = './data/countersign.db';

/** Every setting, in the order --help lists them. COUNTERSIGN_MASTER_KEY is not one: it is read from
 * the environment only (see loadConfig). */
export const SETTINGS = [
  {
    flag: 'port',
    variable: 'PORT',
    value: '<n>',
    default: '8080',
    kind: 'integer',
    range: [0, 65535],
    about: 'HTTP port of the API',
  },
  {
    flag: 'host',
    variable: 'HOST',
    value: '<address>',
    default: '0.0.0.0',
    kind: 'text',
    about: "listen address (of the API, and of a worker's --metrics-port)",
  },
  {
    flag: 'public-url',
    variable: 'COUNTERSIGN_PUBLIC_URL',
    value: '<url>',
    unset: 'a host of COUNTERSIGN_PUBLIC_HOSTS, else the listen address',
    kind: 'text',
    about:
      'where clients reach the API, e.g. https://webhooks.example.com: the start of portal links, listen stream URLs and audit_url links',
  },
  {
    flag: 'public-hosts',
    variable: 'COUNTERSIGN_PUBLIC_HOSTS',
    value: '<hosts>',
    unset: 'none',
    kind: 'text',
    about:
      'without COUNTERSIGN_PUBLIC_URL: comma-separated host names (host or host:port) whose requests get links naming that host; any other Host header gets links to the listen address',
  },
  {
    flag: 'database',
    variable: 'DATABASE_URL',
    value: '<url>',
    default: DEFAULT_DATABASE,
    kind: 'text',
    about: 'a file path or sqlite: URL (SQLite), or postgres://…',
  },
  {
    flag: 'metrics-port',
    variable: 'COUNTERSIGN_METRICS_PORT',
    value: '<n>',
    unset: 'off',
    kind: 'integer',
    range: [0, 65535],
    about: 'worker only: serve /healthz, /readyz and /metrics on HOST at this port',
  },
  {
    flag: 'allow-insecure-targets',
    variable: 'COUNTERSIGN_ALLOW_INSECURE_TARGETS',
    unset: 'false',
    kind: 'switch',
    about: 'allow http:// and loopback/private targets (local development only)',
  },
  {
    flag: 'allowed-target-cidrs',
    variable: 'COUNTERSIGN_ALLOWED_TARGET_CIDRS',
    value: '<cidrs>',
    unset: 'none',
    kind: 'text',
    about: 'comma-separated CIDRs the SSRF guard lets through (internal receivers), e.g. 10.20.0.0/16,fd00:1::/64',
  },
  {
    flag: 'allowed-target-ports',
    variable: 'COUNTERSIGN_ALLOWED_TARGET_PORTS',
    value: '<ports>',
    default: DEFAULT_TARGET_PORTS_TEXT,
    kind: 'text',
    about:
      'comma-separated ports and ranges targets may use, e.g. 443,8443; a URL with another is refused with a 400, and a stored one fails its attempts',
  },
  {
    flag: 'rate-limit',
    variable: 'COUNTERSIGN_RATE_LIMIT',
    value: '<n/window>',
    default: '100000/10s',
    kind: 'text',
    about: `API requests per account (all its tokens together) per window, e.g. 600/1m (a window of ${formatDuration(RATE_LIMIT_WINDOW_RANGE[0])} to ${formatDuration(RATE_LIMIT_WINDOW_RANGE[1])}); off disables it`,
  },
  {
    flag: 'max-subscriptions',
    variable: 'COUNTERSIGN_MAX_SUBSCRIPTIONS',
    value: '<n>',
    default: '1000',
    kind: 'integer',
    range: [1, 1_000_000],
    about: 'live subscriptions one account may have (its callback not counted); past it a create is a 409',
  },
  {
    flag: 'max-batch-deliveries',
    variable: 'COUNTERSIGN_MAX_BATCH_DELIVERIES',
    value: '<n>',
    default: '25000',
    kind: 'integer',
    range: [1, 10_000_000],
    about:
      'deliveries one POST /v1/events/batch may make, all its events together; past it the batch is a 409 and nothing is stored',
  },
  {
    flag: 'max-portal-sessions',
    variable: 'COUNTERSIGN_MAX_PORTAL_SESSIONS',
    value: '<n>',
    default: '1000',
    kind: 'integer',
    range: [1, 1_000_000],
    about: 'portal sessions one account may have open at once (neither ended nor expired); past it a new one is a 409',
  },
  {
    flag: 'erasure-rate-limit',
    variable: 'COUNTERSIGN_ERASURE_RATE_LIMIT',
    value: '<n/window>',
    default: '10/1m',
    kind: 'text',
    about: 'erasures (POST /v1/erasure) per account per window, e.g. 10/1m; off disables it',
  },
  {
    flag: 'erasure-rebuild-interval',
    variable: 'COUNTERSIGN_ERASURE_REBUILD_INTERVAL',
    value: '<duration>',
    default: '1m',
    kind: 'duration',
    range: [MS, DAY],
    about:
      'SQLite: the shortest time between two rebuilds of the file that erasures owe (each holds every query meanwhile, off the event loop); an erasure sooner says when its rebuild runs',
  },
  {
    flag: 'inbound-timeout',
    variable: 'COUNTERSIGN_INBOUND_TIMEOUT',
    value: '<duration>',
    default: '60s',
    kind: 'duration',
    range: [SECOND, 10 * MINUTE],
    about:
      'how long a client may take to send a whole API request, and an API connection may stay silent (COUNTERSIGN_REQUEST_TIMEOUT is the outbound one)',
  },
  {
    flag: 'master-key-file',
    variable: 'COUNTERSIGN_MASTER_KEY_FILE',
    value: '<path>',
    default: './data/master.key',
    kind: 'text',
    about:
      'the key file sealing secrets at rest, created with mode 0600 on first start; unused when COUNTERSIGN_MASTER_KEY is set',
  },
  {
    flag: 'retry-schedule',
    variable: 'COUNTERSIGN_RETRY_SCHEDULE',
    value: '<delays>',
    default: DEFAULT_RETRY_SCHEDULE.map(formatDuration).join(','),
    kind: 'text',
    about: `delay before each attempt, comma-separated (each ${formatDuration(RETRY_ENTRY_RANGE[0])} to ${formatDuration(RETRY_ENTRY_RANGE[1])}, at most ${MAX_RETRY_ENTRIES}); its length is the attempt budget`,
  },
  {
    flag: 'connect-timeout',
    variable: 'COUNTERSIGN_CONNECT_TIMEOUT',
    value: '<duration>',
    default: '5s',
    kind: 'duration',
    range: [10 * MS, 5 * MINUTE],
    about: 'per attempt: how long connecting to a target may take',
  },
  {
    flag: 'request-timeout',
    variable: 'COUNTERSIGN_REQUEST_TIMEOUT',
    value: '<duration>',
    default: '15s',
    kind: 'duration',
    range: [10 * MS, 10 * MINUTE],
    about: 'per attempt: how long a target may take to answer',
  },
  {
    flag: 'max-concurrency',
    variable: 'COUNTERSIGN_MAX_CONCURRENCY',
    value: '<n>',
    default: '512',
    kind: 'integer',
    range: [1, 100_000],
    about: 'sends in flight in this process',
  },
  {
    flag: 'origin-concurrency',
    variable: 'COUNTERSIGN_ORIGIN_CONCURRENCY',
    value: '<n>',
    default: '128',
    kind: 'integer',
    range: [1, 10_000],
    about: 'sends in flight per target origin',
  },
  {
    flag: 'claim-batch',
    variable: 'COUNTERSIGN_CLAIM_BATCH',
    value: '<n>',
    default: '500',
    kind: 'integer',
    range: [1, 5_000],
    about: 'deliveries claimed per round trip',
  },
  {
    flag: 'lease',
    variable: 'COUNTERSIGN_LEASE',
    value: '<duration>',
    default: '60s',
    kind: 'duration',
    range: [SECOND, HOUR],
    about:
      'how long a claim holds without renewal: renewed while its send is in flight, so after a crash another process takes it over within this long',
  },
  {
    flag: 'poll-interval',
    variable: 'COUNTERSIGN_POLL_INTERVAL',
    value: '<duration>',
    default: '1s',
    kind: 'duration',
    range: [10 * MS, HOUR],
    about: 'safety-net poll (new events wake the dispatcher at once)',
  },
  {
    flag: 'disable-after',
    variable: 'COUNTERSIGN_DISABLE_AFTER',
    value: '<duration>',
    default: '5d',
    kind: 'duration',
    range: [MINUTE, 365 * DAY],
    about: 'disable a subscription whose attempts have all failed for this long',
  },
  {
    flag: 'circuit-failures',
    variable: 'COUNTERSIGN_CIRCUIT_FAILURES',
    value: '<n>',
    default: String(DEFAULT_CIRCUIT_SETTINGS.failureThreshold),
    kind: 'integer',
    range: [0, 10_000],
    about:
      "open an endpoint's circuit after this many faults in a row (timeouts, connection failures, 5xx, 429): its deliveries wait, attempts untouched, until a probe succeeds; 0 turns the breaker off",
  },
  {
    flag: 'circuit-open',
    variable: 'COUNTERSIGN_CIRCUIT_OPEN',
    value: '<duration>',
    default: formatDuration(DEFAULT_CIRCUIT_SETTINGS.openMs),
    kind: 'duration',
    range: [SECOND, DAY],
    about: 'how long a circuit stays open before its first probe; each failed probe doubles it',
  },
  {
    flag: 'circuit-max-open',
    variable: 'COUNTERSIGN_CIRCUIT_MAX_OPEN',
    value: '<duration>',
    default: formatDuration(DEFAULT_CIRCUIT_SETTINGS.maxOpenMs),
    kind: 'duration',
    range: [SECOND, DAY],
    about:
      'the longest a circuit stays open between probes (when shorter than --circuit-open, every window is --circuit-open)',
  },
  {
    flag: 'shutdown-grace',
    variable: 'COUNTERSIGN_SHUTDOWN_GRACE',
    value: '<duration>',
    default: '10s',
    kind: 'duration',
    range: [100 * MS, HOUR],
    about: 'on SIGTERM, how long in-flight sends may finish',
  },
  {
    flag: 'no-dispatcher',
    variable: 'COUNTERSIGN_NO_DISPATCHER',
    unset: 'false',
    kind: 'switch',
    about: 'serve the API only, send nothing (scale-out)',
  },
  {
    flag: 'heap-growth',
    variable: 'COUNTERSIGN_HEAP_GROWTH',
    value: '<percent>',
    default: '50',
    kind: 'integer',
    range: [0, 1000],
    about: "how far V8 lets the heap grow past what survived its last full GC; 0 keeps V8's own heuristic",
  },
  {
    flag: 'log-level',
    variable: 'LOG_LEVEL',
    value: '<level>',
    default: 'info',
    kind: 'text',
    about: LOG_LEVELS.join(', '),
  },
  {
    flag: 'log-format',
    variable: 'LOG_FORMAT',
    value: '<json|pretty>',
    unset: 'pretty on a terminal, else json',
    kind: 'text',
    about: 'log line format',
  },
  {
    flag: 'access-log',
    variable: 'COUNTERSIGN_ACCESS_LOG',
    value: '<on|off>',
    default: 'on',
    kind: 'text',
    about: 'one log line per API request',
  },
  {
    flag: 'portal-frame-ancestors',
    variable: 'COUNTERSIGN_PORTAL_FRAME_ANCESTORS',
    value: '<sources>',
    default: "'self'",
    kind: 'text',
    about: "who may show the portal (/ui) in a frame: a CSP source list, e.g. 'self' https://app.example.com",
  },
  {
    flag: 'retention',
    variable: 'COUNTERSIGN_RETENTION',
    value: '<duration|off>',
    default: '30d',
    kind: 'text',
    about: `purge events older than this (${formatDuration(RETENTION_RANGE[0])} to ${formatDuration(RETENTION_RANGE[1])}) with their delivered, failed and cancelled deliveries and their attempts; off keeps everything`,
  },
  {
    flag: 'audit-link-ttl',
    variable: 'COUNTERSIGN_AUDIT_LINK_TTL',
    value: '<duration|off>',
    default: 'off',
    kind: 'text',
    about: `how long a document's audit link opens its trail after it is given out (${formatDuration(RETENTION_RANGE[0])} to ${formatDuration(RETENTION_RANGE[1])}); off: until revoked (POST /v1/documents/:id/audit-link/revoke)`,
  },
] as const satisfies readonly Setting[];

export type SettingFlag = (typeof SETTINGS)[number]['flag'];

const BY_FLAG = new Map<string, Setting>(SETTINGS.map((s) => [s.flag, s]));

/** What --help says about a setting: its meaning, then its variable, range and default. */
export function describeSetting(setting: Setting): string {
  const facts: string[] = [setting.variable];
  if (setting.range !== undefined) {
    facts.push(
      setting.kind === 'duration'
        ? `${formatDuration(setting.range[0])} to ${formatDuration(setting.range[1])}`
        : `${setting.range[0]} to ${setting.range[1]}`,
    );
  }
  const fallback = setting.default ?? setting.unset;
  if (fallback !== undefined) facts.push(`default ${fallback}`);
  return `${setting.about}\n${facts.join(', ')}`;
}

/** A value as given, with the name to blame in a message: the flag or the variable it came from. */
interface Given {
  name: string;
  text: string;
}

export function loadConfig(flags: Flags = {}, env: Env = process.env): Config {
  const read = (flag: SettingFlag): Given | undefined => {
    const setting = BY_FLAG.get(flag) as Setting;
    const fromFlag = flags[flag];
    if (typeof fromFlag === 'string') return { name: `--${flag}`, text: fromFlag };
    if (fromFlag === true) return { name: `--${flag}`, text: 'true' };
    const fromEnv = env[setting.variable];
    if (fromEnv !== undefined && fromEnv !== '') return { name: setting.variable, text: fromEnv };
    return setting.default === undefined ? undefined : { name: setting.variable, text: setting.default };
  };
  const text = (flag: SettingFlag): string => (read(flag) as Given).text;
  const int = (flag: SettingFlag): number => integer(read(flag) as Given, rangeOf(flag));
  const ms = (flag: SettingFlag): number => boundedDuration(read(flag) as Given, rangeOf(flag));
  const switchedOn = (flag: SettingFlag): boolean => onOff(read(flag));

  const databaseUrl = text('database');
  const metricsPort = read('metrics-port');
  return {
    port: int('port'),
    host: text('host'),
    publicUrl: publicUrl(read('public-url')),
    publicHosts: publicHosts(read('public-hosts')),
    metricsPort: metricsPort === undefined ? undefined : integer(metricsPort, rangeOf('metrics-port')),
    database: database(read('database') as Given),
    databaseUrl,
    allowInsecureTargets: switchedOn('allow-insecure-targets'),
    allowedTargetCidrs: cidrs(read('allowed-target-cidrs')),
    allowedTargetPorts: ports(read('allowed-target-ports') as Given),
    // Environment only: a key on the command line would show in `ps` and in shell history.
    masterKey: env.COUNTERSIGN_MASTER_KEY || undefined,
    masterKeyFile: text('master-key-file'),
    logLevel: logLevel(read('log-level') as Given),
    logFormat: logFormat(read('log-format')),
    accessLog: switchedOn('access-log'),
    portalFrameAncestors: frameAncestors(read('portal-frame-ancestors') as Given),
    heapGrowthPercent: int('heap-growth'),
    inboundTimeoutMs: ms('inbound-timeout'),
    erasureRebuildEveryMs: ms('erasure-rebuild-interval'),
    erasureRateLimit: rateLimit(read('erasure-rate-limit') as Given),
    maxSubscriptions: int('max-subscriptions'),
    maxBatchDeliveries: int('max-batch-deliveries'),
    maxPortalSessions: int('max-portal-sessions'),
    rateLimit: rateLimit(read('rate-limit') as Given),
    dispatcher: {
      enabled: !switchedOn('no-dispatcher'),
      retrySchedule: retrySchedule(read('retry-schedule') as Given),
      connectTimeoutMs: ms('connect-timeout'),
      requestTimeoutMs: ms('request-timeout'),
      maxConcurrency: int('max-concurrency'),
      perOriginConcurrency: int('origin-concurrency'),
      claimBatchSize: int('claim-batch'),
      leaseMs: ms('lease'),
      pollIntervalMs: ms('poll-interval'),
      disableAfterFailingMs: ms('disable-after'),
      shutdownGraceMs: ms('shutdown-grace'),
      circuit: circuitSettings(
        int('circuit-failures'),
        read('circuit-open') as Given,
        read('circuit-max-open') as Given,
        {
          connectTimeoutMs: ms('connect-timeout'),
          requestTimeoutMs: ms('request-timeout'),
        },
      ),
    },
    retentionMs: retention(read('retention') as Given),
    auditLinkTtlMs: retention(read('audit-link-ttl') as Given),
  };
}

/**
 * The breaker's settings. A probe may go unanswered for as long as a send may take (connecting,
 * then answering) and a little more before another probe may be sent.
 */
function circuitSettings(
  failureThreshold: number,
  open: Given,
  maxOpen: Given,
  timeouts: { connectTimeoutMs: number; requestTimeoutMs: number },
): CircuitSettings {
  const openMs = boundedDuration(open, rangeOf('circuit-open'));
  const maxOpenMs = boundedDuration(maxOpen, rangeOf('circuit-max-open'));
  return {
    failureThreshold,
    openMs,
    maxOpenMs,
    probeTimeoutMs: timeouts.connectTimeoutMs + timeouts.requestTimeoutMs + 5 * SECOND,
  };
}

/** A duration in RETENTION_RANGE, or `off` (keep everything). */
function retention(given: Given): number | undefined {
  if (/^\s*off\s*$/i.test(given.text)) return undefined;
  const ms = parseDuration(given.text);
  const [min, max] = RETENTION_RANGE;
  if (ms === undefined || !Number.isFinite(ms) || ms < min || ms > max) {
    throw new ConfigError(
      `${given.name} must be a duration from ${formatDuration(min)} to ${formatDuration(max)} (such as 30d or 12h), or off, got "${given.text}"`,
    );
  }
  return ms;
}

// One source of a CSP source list: a keyword, a scheme (https:) or a host with an optional scheme,
// port and path. Anything else, a ';' above all, could smuggle another directive into the header.
const FRAME_SOURCE =
  /^(?:'self'|'none'|[a-z][a-z0-9+.-]*:|(?:[a-z][a-z0-9+.-]*:\/\/)?(?:\*|(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(?:\d{1,5}|\*))?(?:\/[a-z0-9\-._~%!$&'()*+=:@/]*)?)$/i;

function frameAncestors(given: Given): string {
  const sources = given.text.trim().split(/\s+/);
  const bad = sources.find((s) => !FRAME_SOURCE.test(s));
  if (bad !== undefined) {
    throw new ConfigError(
      `${given.name} must be CSP sources separated by spaces ('self', 'none', https:, https://app.example.com), got "${bad}"`,
    );
  }
  const unquoted = sources.find((s) => /^(self|none|unsafe-[a-z-]+|strict-dynamic)$/i.test(s));
  if (unquoted !== undefined) {
    throw new ConfigError(`${given.name}: keywords take single quotes ('${unquoted}'), got "${given.text}"`);
  }
  if (sources.includes("'none'") && sources.length > 1) {
    throw new ConfigError(`${given.name}: 'none' must stand alone, got "${given.text}"`);
  }
  return sources.join(' ');
}

function rangeOf(flag: SettingFlag): readonly [number, number] {
  return (BY_FLAG.get(flag) as Setting).range as readonly [number, number];
}

function integer(given: Given, [min, max]: readonly [number, number]): number {
  const trimmed = given.text.trim();
  // Number() alone would take '', '0x10' and '1e3'.
  const n = /^\d{1,16}$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!(n >= min && n <= max)) {
    throw new ConfigError(`${given.name} must be an integer from ${min} to ${max}, got "${given.text}"`);
  }
  return n;
}

/**
 * A duration within `[min, max]` ms; `name` is the flag or variable to blame. Shared with the
 * commands' own duration options (`token create --expires-in`).
 */
export function parseBoundedDuration(name: string, text: string, range: readonly [number, number]): number {
  return boundedDuration({ name, text }, range);
}

function boundedDuration(given: Given, [min, max]: readonly [number, number]): number {
  const ms = parseDuration(given.text);
  // parseDuration takes any number of digits: 400 of them come out as Infinity.
  if (ms === undefined || !Number.isFinite(ms) || ms < min || ms > max) {
    const shape = ms === undefined ? ' (a number and ms, s, m, h or d; a bare number is seconds)' : '';
    throw new ConfigError(
      `${given.name} must be a duration from ${formatDuration(min)} to ${formatDuration(max)}${shape}, got "${given.text}"`,
    );
  }
  return ms;
}

/** `0,5s,5m,2h`: the delay before each attempt; 0 is "at once". */
function retrySchedule(given: Given): number[] {
  const parts = given.text.split(',');
  if (parts.length > MAX_RETRY_ENTRIES) {
    throw new ConfigError(`${given.name} may have at most ${MAX_RETRY_ENTRIES} entries, got ${parts.length}`);
  }
  return parts.map((part, i) =>
    boundedDuration({ name: `${given.name} entry ${i + 1}`, text: part.trim() }, RETRY_ENTRY_RANGE),
  );
}

/** `N/window`, e.g. `600/1m`; `N` alone is per second; `0` or `off` turns the limit off. */
function rateLimit(given: Given): { max: number; windowMs: number } {
  const value = given.text.trim();
  if (/^(0|off)$/i.test(value)) return { max: 0, windowMs: 1000 };
  const parts = value.split('/');
  const count = (parts[0] ?? '').trim();
  const max = /^\d{1,16}$/.test(count) ? Number(count) : Number.NaN;
  if (parts.length > 2 || !(max >= 1 && max <= RATE_LIMIT_MAX)) {
    throw new ConfigError(
      `${given.name} must look like 600/1m (1 to ${RATE_LIMIT_MAX} requests per window) or off, got "${given.text}"`,
    );
  }
  const windowMs = boundedDuration({ name: `${given.name}'s window`, text: parts[1] ?? '1s' }, RATE_LIMIT_WINDOW_RANGE);
  return { max, windowMs };
}

function database(given: Given): DatabaseLocation {
  try {
    return parseDatabaseUrl(given.text);
  } catch (err) {
    throw new ConfigError(`${given.name}: ${(err as Error).message}`);
  }
}

/** An http(s) origin: a scheme, a host and a port at most (a path of / is dropped). */
/** `webhooks.example.com,api.example.com:8443`: names as a Host header carries them, lowercased. */
function publicHosts(given: Given | undefined): string[] {
  if (given === undefined) return [];
  return given.text.split(',').map((raw) => {
    const host = raw.trim().toLowerCase();
    let parsed: URL | undefined;
    try {
      parsed = new URL(`http://${host}`);
    } catch {
      parsed = undefined;
    }
    if (!parsed || host === '' || parsed.host !== host.replace(/:80$/, '') || /[/?#@]/.test(host)) {
      throw new ConfigError(
        `${given.name} must be a comma-separated list of host names, each with an optional :port, such as webhooks.example.com,api.example.com:8443, got "${raw.trim()}"`,
      );
    }
    return host;
  });
}

function publicUrl(given: Given | undefined): string | undefined {
  if (given === undefined) return undefined;
  const text = given.text.trim();
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.username !== '' ||
    url.password !== '' ||
    url.pathname !== '/' ||
    /[?#]/.test(text)
  ) {
    throw new ConfigError(
      `${given.name} must be an absolute http(s) URL with no path, query or fragment, such as https://webhooks.example.com, got "${given.text}"`,
    );
  }
  return url.origin;
}

/** A comma-separated list of CIDRs such as `10.20.0.0/16,fd00:1::/64`, canonicalised. */
function ports(given: Given): PortRange[] {
  try {
    return parsePortRanges(given.text);
  } catch (err) {
    throw new ConfigError(
      `${given.name} must be a comma-separated list of ports and ranges: ${(err as Error).message}`,
    );
  }
}

function cidrs(given: Given | undefined): string[] {
  if (given === undefined) return [];
  try {
    return parseCidrList(given.text).map((c) => c.text);
  } catch (err) {
    throw new ConfigError(`${given.name} must be a comma-separated list of CIDRs: ${(err as Error).message}`);
  }
}

// Checked here rather than left to pino, whose "unknown level" names neither the variable nor the choices.
function logLevel(given: Given): string {
  const level = given.text.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(`${given.name} must be one of ${LOG_LEVELS.join(', ')}, got "${given.text}"`);
  }
  return level;
}

function logFormat(given: Given | undefined): LogFormat | undefined {
  if (given === undefined) return undefined;
  const format = given.text.trim().toLowerCase();
  if (format !== 'json' && format !== 'pretty') {
    throw new ConfigError(`${given.name} must be json or pretty, got "${given.text}"`);
  }
  return format;
}

function onOff(given: Given | undefined): boolean {
  if (given === undefined) return false;
  if (/^(1|true|yes|on)$/i.test(given.text.trim())) return true;
  if (/^(0|false|no|off)$/i.test(given.text.trim())) return false;
  throw new ConfigError(`${given.name} must be on or off (or true or false), got "${given.text}"`);
}
