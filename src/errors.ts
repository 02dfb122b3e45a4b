// The one catalogue of error codes. Every error a client can see has a stable `code` listed here
// with its HTTP status; the API maps thrown `CountersignError`s to `{"error":{code,message,details?}}`
// in one place (api/error-handler.ts). Codes are part of the public contract: add, never rename.

export const ERROR_CATALOGUE = {
  validation_failed: 400,
  malformed_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  subscription_exists: 409,
  delivery_in_flight: 409,
  quota_exceeded: 409,
  idempotency_key_reused: 422,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface ErrorDetail {
  field?: string;
  message: string;
}

export class CountersignError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly details: ErrorDetail[] | undefined;

  constructor(code: ErrorCode, message: string, details?: ErrorDetail[]) {
    super(message);
    this.name = 'CountersignError';
    this.code = code;
    this.statusCode = ERROR_CATALOGUE[code];
    this.details = details;
  }
}

/** A 400 about one named field: the message always names the field, as the seed's 400 row asks. */
export function invalidField(field: string, message: string): CountersignError {
  return new CountersignError('validation_failed', `${field}: ${message}`, [{ field, message }]);
}

export function notFound(what: string): CountersignError {
  return new CountersignError('not_found', `${what} not found`);
}
