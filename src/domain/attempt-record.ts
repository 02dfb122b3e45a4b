// What an attempt's log row may hold. Pure. PostgreSQL text cannot hold U+0000, and a receiver's
// answer can: a row that cannot be written would fail the whole batch it is written with, so such
// characters are replaced before they reach the store. Response headers are kept as JSON, bounded.

/** Response headers kept per attempt, at most this much JSON. */
export const RESPONSE_HEADERS_LIMIT = 4 * 1024;

/** The text with U+0000 replaced by U+FFFD, so both dialects can store it. */
export function storableText(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

/**
 * The answer's headers as a JSON object of strings (repeated headers joined with ", "), in the
 * order received, cut at RESPONSE_HEADERS_LIMIT: headers past it are counted under "…".
 */
export function responseHeadersJson(headers: Record<string, string | string[] | undefined>): string {
  const kept: Record<string, string> = {};
  let size = 2;
  let left = 0;
  for (const name of Object.keys(headers)) {
    const raw = headers[name];
    if (raw === undefined) continue;
    const value = storableText(Array.isArray(raw) ? raw.join(', ') : raw);
    const cost = name.length + value.length + 6;
    if (left > 0 || size + cost > RESPONSE_HEADERS_LIMIT) {
      left++;
      continue;
    }
    kept[name] = value;
    size += cost;
  }
  if (left > 0) kept['…'] = `${left} more header${left === 1 ? '' : 's'} not kept`;
  return JSON.stringify(kept);
}
