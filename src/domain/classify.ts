// What a receiver's answer (or the lack of one) means for a delivery. Pure.

export type Outcome = 'delivered' | 'gone' | 'retry';

export function classifyStatus(statusCode: number): Outcome {
  if (statusCode >= 200 && statusCode < 300) return 'delivered';
  if (statusCode === 410) return 'gone';
  return 'retry';
}

/** Statuses whose Retry-After header we honour. */
export function honoursRetryAfter(statusCode: number): boolean {
  return statusCode === 429 || statusCode === 503;
}

/** A short, stable description of a transport failure for the attempt log. */
export function describeSendError(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'dns lookup failed';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect timeout';
    case 'ERR_SSRF_REFUSED':
      // The guard's own words: `ssrf: <host> resolves to <address>, <reason>`.
      // Stryker disable next-line OptionalChaining: this case is reached only with a code read off e (or e.cause), so e is an object here and e?.message and e.message read the same
      return (e?.message ?? 'ssrf: refused').slice(0, 500);
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'timeout';
    // Stryker disable next-line ConditionalExpression: emptying the last case (its lone break) changes nothing, the switch ends there anyway
    default:
      break;
  }
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timeout';
  if (typeof code === 'string' && (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL'))) {
    return `tls error (${code})`;
  }
  const message = e?.message ?? String(err);
  return code ? `${code}: ${message}`.slice(0, 500) : message.slice(0, 500);
}
