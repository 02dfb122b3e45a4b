// How the API commands (`subscriptions`, `events`, `deliveries`, `replay`, `trigger`) reach a
// running countersign: over its HTTP API, with the address from --api-url, COUNTERSIGN_API_URL,
// the config file or http://localhost:8080, and the token from COUNTERSIGN_TOKEN or the config
// file that `countersign login` writes (~/.config/countersign/config.json, honouring
// XDG_CONFIG_HOME, mode 0600). No command takes a token as a flag: it would show in `ps` and in
// shell history.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export const DEFAULT_API_URL = 'http://localhost:8080';

export interface SavedLogin {
  api_url: string;
  token: string;
}

/** A usage problem of the API commands (exit 2): no token, a malformed address. */
export class ApiUsageError extends Error {}

/** The API answered with an error (exit 1): its message, as the API put it. */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'countersign', 'config.json');
}

export function readSavedLogin(env: NodeJS.ProcessEnv = process.env): SavedLogin | undefined {
  const path = configPath(env);
  if (!existsSync(path)) return undefined;
  let parsed: Partial<SavedLogin>;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<SavedLogin>;
  } catch (err) {
    throw new ApiUsageError(`cannot read ${path}: ${(err as Error).message}; run "countersign login" again`);
  }
  if (typeof parsed.api_url !== 'string' || typeof parsed.token !== 'string') {
    throw new ApiUsageError(`${path} holds no api_url and token; run "countersign login" again`);
  }
  return { api_url: parsed.api_url, token: parsed.token };
}

/** Writes the login where only this user can read it (the folder 0700, the file 0600), atomically. */
export function saveLogin(login: SavedLogin, env: NodeJS.ProcessEnv = process.env): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(login, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
  return path;
}

/** An http(s) URL with nothing after the host but an optional trailing slash. */
export function parseApiUrl(text: string, from: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ApiUsageError(`${from} must be an http(s) URL such as ${DEFAULT_API_URL}, got "${text}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username) {
    throw new ApiUsageError(`${from} must be an http(s) URL such as ${DEFAULT_API_URL}, got "${text}"`);
  }
  return url.toString().replace(/\/+$/, '');
}

export interface ApiConnection {
  url: string;
  token: string;
}

/** The address and token to use, from the flag, the environment and the saved login, in that order. */
export function resolveConnection(apiUrlFlag: string | undefined, env: NodeJS.ProcessEnv = process.env): ApiConnection {
  const saved = readSavedLogin(env);
  const url =
    apiUrlFlag !== undefined
      ? parseApiUrl(apiUrlFlag, '--api-url')
      : env.COUNTERSIGN_API_URL
        ? parseApiUrl(env.COUNTERSIGN_API_URL, 'COUNTERSIGN_API_URL')
        : (saved?.api_url ?? DEFAULT_API_URL);
  const token = env.COUNTERSIGN_TOKEN || saved?.token;
  if (!token) {
    throw new ApiUsageError(
      'no API token: run "countersign login", or set COUNTERSIGN_TOKEN (tokens are never taken as a flag)',
    );
  }
  return { url, token };
}

export type Query = Record<string, string | number | boolean | undefined>;

/** One API call; resolves the JSON answer (undefined for 204), throws ApiCallError for an error answer. */
export async function callApi<T = unknown>(
  connection: ApiConnection,
  method: string,
  path: string,
  options: { query?: Query; body?: unknown } = {},
): Promise<T> {
  const url = new URL(path, `${connection.url}/`);
  for (const [name, value] of Object.entries(options.query ?? {})) {
    if (value !== undefined) url.searchParams.set(name, String(value));
  }
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${connection.token}`,
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new ApiCallError(
      0,
      'unreachable',
      `cannot reach ${connection.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}` +
        ' (is countersign running there? set --api-url or COUNTERSIGN_API_URL)',
    );
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiCallError(
      response.status,
      error?.code ?? 'http_error',
      error?.message ?? `${method} ${url.pathname} answered ${response.status} ${response.statusText}`,
    );
  }
  return body as T;
}
