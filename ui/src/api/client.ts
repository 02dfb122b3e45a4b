// The one HTTP client of the portal: openapi-fetch over the types generated from countersign's
// own /openapi.json (schema.d.ts, written by `npm run build`), so a request or an answer that
// drifts from the API fails the build. It adds the session's token to every request and turns an
// API error into an ApiError carrying the API's own message.
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';

export type { paths };

/** An answer's JSON body, by path, method and status. */
export type Answer<P extends keyof paths, M extends keyof paths[P], S extends number = 200> = paths[P][M] extends {
  responses: infer R;
}
  ? S extends keyof R
    ? R[S] extends { content: { 'application/json': infer J } }
      ? J
      : never
    : never
  : never;

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

let currentToken: string | undefined;
let onUnauthorized: (() => void) | undefined;

export function setApiToken(token: string | undefined): void {
  currentToken = token;
}

/** Called when the API refuses the token (expired, revoked): the app signs out and says why. */
export function whenUnauthorized(listener: () => void): void {
  onUnauthorized = listener;
}

const auth: Middleware = {
  onRequest({ request }) {
    if (currentToken) request.headers.set('authorization', `Bearer ${currentToken}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401 && currentToken) onUnauthorized?.();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: window.location.origin });
api.use(auth);

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The answer's data, or an ApiError with the API's message (or a plain one when there is none). */
export function unwrap<T>(outcome: Outcome<T>): T {
  const { data, error, response } = outcome;
  if (response.ok) return data as T;
  const body = error as { error?: { code?: string; message?: string } } | undefined;
  throw new ApiError(
    response.status,
    body?.error?.code ?? 'http_error',
    body?.error?.message ?? `the server answered ${response.status} ${response.statusText}`.trim(),
  );
}
