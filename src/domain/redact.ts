// Known secrets out of what a receiver answered. A receiver that echoes its request (many test
// endpoints, request bins, some frameworks' error pages) would otherwise put the secret_token, a
// callback's password or bearer token, back into the delivery log in clear, where anyone who may
// read the account's deliveries (a portal session included) reads it. Pure: no I/O.

/** What stands in for a secret in a stored answer. */
export const REDACTED = '[redacted]';

/**
 * Secrets shorter than this are not looked for: a one-letter secret_token would blank every
 * occurrence of that letter in every answer, and such a secret protects nothing anyway.
 */
export const MIN_REDACTED_LENGTH = 4;

/**
 * The forms a secret takes in an echo: as sent, JSON-escaped (a body echoed inside JSON), and
 * percent-encoded (a query string or a form echoed back). Longest first, so that a form that holds
 * another is replaced whole.
 */
function formsOf(secret: string): string[] {
  const forms = new Set([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)]);
  return [...forms].sort((a, b) => b.length - a.length);
}

/**
 * `text` with every known secret replaced by REDACTED. An excerpt is cut at a byte limit, so a
 * secret may be cut short at its end: a trailing prefix of a secret (of MIN_REDACTED_LENGTH or
 * more) is replaced too.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < MIN_REDACTED_LENGTH) continue;
    for (const form of formsOf(secret)) {
      if (out.includes(form)) out = out.split(form).join(REDACTED);
      for (let k = form.length - 1; k >= MIN_REDACTED_LENGTH; k--) {
        if (out.endsWith(form.slice(0, k))) {
          out = `${out.slice(0, out.length - k)}${REDACTED}`;
          break;
        }
      }
    }
  }
  return out;
}

/** Response headers with known secrets out of every value. */
export function redactHeaders(
  headers: Record<string, string | string[] | undefined>,
  secrets: readonly string[],
): Record<string, string | string[] | undefined> {
  if (secrets.every((s) => s.length < MIN_REDACTED_LENGTH)) return headers;
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    out[name] =
      value === undefined
        ? undefined
        : Array.isArray(value)
          ? value.map((v) => redactSecrets(v, secrets))
          : redactSecrets(value, secrets);
  }
  return out;
}
