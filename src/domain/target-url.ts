// Target-URL policy applied when a subscription or callback URL is registered. Pure: no DNS here.
// The seed advises https; plain http (and loopback/private literal hosts) are allowed only when the
// operator turns on insecure targets for local development. The full SSRF guard, with DNS
// resolution and connect-time pinning, builds on this and honours the same switch.
import { isIP } from 'node:net';
import { invalidField } from '../errors.js';

export interface TargetPolicy {
  allowInsecure: boolean;
}

export const MAX_URL_LENGTH = 2048;

/** Returns the normalised URL (WHATWG `href`) or throws a 400 naming `field`. */
export function checkTargetUrl(raw: string, field: string, policy: TargetPolicy): string {
  if (raw.length > MAX_URL_LENGTH) throw invalidField(field, `must be at most ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidField(field, 'must be an absolute URL');
  }
  if (url.protocol !== 'https:' && !(policy.allowInsecure && url.protocol === 'http:')) {
    throw invalidField(
      field,
      policy.allowInsecure
        ? 'must use https or http'
        : 'must use https (http needs COUNTERSIGN_ALLOW_INSECURE_TARGETS)',
    );
  }
  if (url.username !== '' || url.password !== '') throw invalidField(field, 'must not carry credentials');
  if (url.hostname === '') throw invalidField(field, 'must have a host');
  if (!policy.allowInsecure && isLocalLiteralHost(url.hostname)) {
    throw invalidField(field, 'must not point at a loopback, private or link-local address');
  }
  return url.href;
}

/**
 * A cheap literal check (names like `localhost` and the most common private literals). The SSRF
 * guard does the exhaustive, resolution-aware job; this keeps the obvious cases out at once.
 */
function isLocalLiteralHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const family = isIP(host);
  if (family === 4) {
    const [a, b] = host.split('.').map(Number) as [number, number];
    return (
      a === 127 ||
      a === 10 ||
      a === 0 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168)
    );
  }
  if (family === 6) return host === '::1' || host === '::' || host.startsWith('fe80:') || /^f[cd]/.test(host);
  return false;
}
