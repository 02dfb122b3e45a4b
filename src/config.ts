// One typed configuration, read once: command-line flags win over environment variables, which
// win over defaults. Every knob is listed here with its variable, so the README can point here.
import { parseCidrList } from './domain/address-policy.js';
import { DEFAULT_RETRY_SCHEDULE, parseRetrySchedule } from './domain/retry-policy.js';
import { parseDuration } from './domain/time.js';
import { type DatabaseLocation, parseDatabaseUrl } from './store/open.js';

export interface Config {
  port: number;
  host: string;
  /** `worker` only: serve /healthz, /readyz and /metrics on this port (off when undefined). */
  metricsPort: number | undefined;
  database: DatabaseLocation;
  databaseUrl: string;
  allowInsecureTargets: boolean;
  /** COUNTERSIGN_ALLOWED_TARGET_CIDRS: canonical CIDRs the SSRF guard lets through (internal receivers). */
  allowedTargetCidrs: string[];
  masterKey: string | undefined;
  masterKeyFile: string;
  logLevel: string;
  /** COUNTERSIGN_HEAP_GROWTH: how far V8 lets the heap grow past what survived a full GC, in %; 0 = V8's own. */
  heapGrowthPercent: number;
  /** Per-token API rate limit: `max` requests per `windowMs`; max 0 turns it off. */
  rateLimit: { max: number; windowMs: number };
  dispatcher: DispatcherConfig;
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
}

export type Flags = Record<string, string | boolean | undefined>;
type Env = Record<string, string | undefined>;

export const DEFAULT_DATABASE = './data/countersign.db';

export function loadConfig(flags: Flags = {}, env: Env = process.env): Config {
  const pick = (flag: string, variable: string): string | undefined => {
    const fromFlag = flags[flag];
    if (typeof fromFlag === 'string') return fromFlag;
    if (fromFlag === true) return 'true';
    return env[variable] === '' ? undefined : env[variable];
  };
  const databaseUrl = pick('database', 'DATABASE_URL') ?? DEFAULT_DATABASE;
  const retry = pick('retry-schedule', 'COUNTERSIGN_RETRY_SCHEDULE');
  return {
    port: integer('PORT', pick('port', 'PORT') ?? '8080', 0, 65535),
    host: pick('host', 'HOST') ?? '0.0.0.0',
    metricsPort: ((value) => (value === undefined ? undefined : integer('COUNTERSIGN_METRICS_PORT', value, 0, 65535)))(
      pick('metrics-port', 'COUNTERSIGN_METRICS_PORT'),
    ),
    database: parseDatabaseUrl(databaseUrl),
    databaseUrl,
    allowInsecureTargets: bool(
      'COUNTERSIGN_ALLOW_INSECURE_TARGETS',
      pick('allow-insecure-targets', 'COUNTERSIGN_ALLOW_INSECURE_TARGETS'),
    ),
    allowedTargetCidrs: cidrs(
      'COUNTERSIGN_ALLOWED_TARGET_CIDRS',
      pick('allowed-target-cidrs', 'COUNTERSIGN_ALLOWED_TARGET_CIDRS') ?? '',
    ),
    masterKey: env.COUNTERSIGN_MASTER_KEY || undefined,
    masterKeyFile: pick('master-key-file', 'COUNTERSIGN_MASTER_KEY_FILE') ?? './data/master.key',
    logLevel: pick('log-level', 'LOG_LEVEL') ?? 'info',
    heapGrowthPercent: integer(
      'COUNTERSIGN_HEAP_GROWTH',
      pick('heap-growth', 'COUNTERSIGN_HEAP_GROWTH') ?? '50',
      0,
      1000,
    ),
    rateLimit: rateLimit(pick('rate-limit', 'COUNTERSIGN_RATE_LIMIT') ?? '100000/10s'),
    dispatcher: {
      enabled: flags['no-dispatcher'] !== true && !bool('COUNTERSIGN_NO_DISPATCHER', env.COUNTERSIGN_NO_DISPATCHER),
      retrySchedule: retry === undefined ? [...DEFAULT_RETRY_SCHEDULE] : parseRetrySchedule(retry),
      connectTimeoutMs: duration(
        'COUNTERSIGN_CONNECT_TIMEOUT',
        pick('connect-timeout', 'COUNTERSIGN_CONNECT_TIMEOUT') ?? '5s',
      ),
      requestTimeoutMs: duration(
        'COUNTERSIGN_REQUEST_TIMEOUT',
        pick('request-timeout', 'COUNTERSIGN_REQUEST_TIMEOUT') ?? '15s',
      ),
      maxConcurrency: integer(
        'COUNTERSIGN_MAX_CONCURRENCY',
        pick('max-concurrency', 'COUNTERSIGN_MAX_CONCURRENCY') ?? '512',
        1,
        100_000,
      ),
      perOriginConcurrency: integer(
        'COUNTERSIGN_ORIGIN_CONCURRENCY',
        pick('origin-concurrency', 'COUNTERSIGN_ORIGIN_CONCURRENCY') ?? '128',
        1,
        10_000,
      ),
      claimBatchSize: integer(
        'COUNTERSIGN_CLAIM_BATCH',
        pick('claim-batch', 'COUNTERSIGN_CLAIM_BATCH') ?? '500',
        1,
        5_000,
      ),
      leaseMs: duration('COUNTERSIGN_LEASE', pick('lease', 'COUNTERSIGN_LEASE') ?? '60s'),
      pollIntervalMs: duration('COUNTERSIGN_POLL_INTERVAL', pick('poll-interval', 'COUNTERSIGN_POLL_INTERVAL') ?? '1s'),
      disableAfterFailingMs: duration(
        'COUNTERSIGN_DISABLE_AFTER',
        pick('disable-after', 'COUNTERSIGN_DISABLE_AFTER') ?? '5d',
      ),
      shutdownGraceMs: duration(
        'COUNTERSIGN_SHUTDOWN_GRACE',
        pick('shutdown-grace', 'COUNTERSIGN_SHUTDOWN_GRACE') ?? '10s',
      ),
    },
  };
}

function integer(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

function duration(name: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new Error(`${name} must be a duration such as 500ms, 5s, 10m, 2h or 5d, got "${value}"`);
  return ms;
}

/** `N/window`, e.g. `600/1m`; `0` or `off` turns the limit off. */
function rateLimit(value: string): { max: number; windowMs: number } {
  if (/^(0|off)$/i.test(value.trim())) return { max: 0, windowMs: 1000 };
  const [count = '', window = '1s'] = value.split('/');
  const max = Number(count);
  const windowMs = parseDuration(window);
  if (!Number.isInteger(max) || max < 1 || windowMs === undefined || windowMs <= 0) {
    throw new Error(`COUNTERSIGN_RATE_LIMIT must look like 600/1m (requests per window) or off, got "${value}"`);
  }
  return { max, windowMs };
}

/** A comma-separated list of CIDRs such as `10.20.0.0/16,fd00:1::/64`, canonicalised. */
function cidrs(name: string, value: string): string[] {
  try {
    return parseCidrList(value).map((c) => c.text);
  } catch (err) {
    throw new Error(`${name} must be a comma-separated list of CIDRs: ${(err as Error).message}`);
  }
}

function bool(name: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new Error(`${name} must be true or false, got "${value}"`);
}
