// Target-URL policy applied when a subscription or callback URL is registered. Pure: no DNS here.
// The seed advises https; plain http is allowed only when the operator turns on insecure targets
// for local development, and so is any literal address the SSRF address policy forbids (unless the
// operator's allow-list admits it). The resolving half of the check is api/target-guard.ts; the
// send-time half is delivery/guarded-lookup.ts. All three honour the same switches.
import { invalidField } from '../errors.js';
import { allowListFrom, checkAddress, describeRefusal, parseIpLiteral } from './address-policy.js';

export interface TargetPolicy {
  /** COUNTERSIGN_ALLOW_INSECURE_TARGETS: http and every address allowed (local development). */
  allowInsecure: boolean;
  /** COUNTERSIGN_ALLOWED_TARGET_CIDRS, validated: addresses here are allowed even when forbidden. */
  allowedCidrs?: readonly string[];
  /** COUNTERSIGN_ALLOWED_TARGET_PORTS, parsed; DEFAULT_TARGET_PORTS when absent. Applies in every mode. */
  allowedPorts?: readonly PortRange[];
}

/** Inclusive. */
export type PortRange = readonly [number, number];

/**
 * The ports a target may use unless the operator says otherwise: the web's two, and the
 * unprivileged range. Below 1024 live the services a webhook has no business reaching (SSH, SMTP,
 * LDAP, …), so a URL naming one is refused even where its address is allowed.
 */
export const DEFAULT_TARGET_PORTS_TEXT = '80,443,1024-65535';

/** Parses `80,443,1024-65535`: ports and inclusive ranges, 1 to 65535. Throws a plain Error naming the part. */
export function parsePortRanges(text: string): PortRange[] {
  const ranges: PortRange[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    const low = Number(match?.[1]);
    const high = match?.[2] === undefined ? low : Number(match[2]);
    if (!match || low < 1 || high > 65_535 || low > high) {
      throw new Error(`"${part}" is not a port (1 to 65535) or a range of them such as 1024-65535`);
    }
    ranges.push([low, high]);
  }
  return ranges;
}

export const DEFAULT_TARGET_PORTS: readonly PortRange[] = parsePortRanges(DEFAULT_TARGET_PORTS_TEXT);

/** The port a URL connects to: its own, or its scheme's. */
export function portOf(url: { port: string; protocol: string }): number {
  return url.port === '' ? (url.protocol === 'http:' ? 80 : 443) : Number(url.port);
}

export function portAllowed(port: number, policy: TargetPolicy): boolean {
  return (policy.allowedPorts ?? DEFAULT_TARGET_PORTS).some(([low, high]) => port >= low && port <= high);
}

/** Why a port is refused, as a 400 or an attempt's error says it. */
export function portRefusal(port: number): string {
  return `port ${port} is not allowed (COUNTERSIGN_ALLOWED_TARGET_PORTS, by default ${DEFAULT_TARGET_PORTS_TEXT})`;
}

export const MAX_URL_LENGTH = 2048;

/** Unicode white space and C0/C1 controls, DEL included. */
const UNSAFE_CHARACTER = /[\s\p{Cc}]/u;
/**
 * `scheme://` and then at least one character of authority. `https:///h`, `https:/h` and `https:h`
 * have none, yet the WHATWG parser reads all three as `https://h/`.
 */
const HAS_AUTHORITY = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]/i;

/** Returns the normalised URL (WHATWG `href`) or throws a 400 naming `field`. */
export function checkTargetUrl(raw: string, field: string, policy: TargetPolicy): string {
  if (raw.length > MAX_URL_LENGTH) throw invalidField(field, `must be at most ${MAX_URL_LENGTH} characters`);
  // The WHATWG parser quietly repairs what it is given: it strips tabs and line breaks anywhere,
  // reads "\" as "/" and supplies a missing "//". What it parsed would then differ from what the
  // client wrote, so such URLs are refused rather than repaired.
  if (UNSAFE_CHARACTER.test(raw)) throw invalidField(field, 'must not contain whitespace or control characters');
  if (raw.includes('\\')) throw invalidField(field, 'must not contain backslashes; use "/"');
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
  if (url.hostname === '' || !HAS_AUTHORITY.test(raw)) {
    throw invalidField(field, 'must name a host right after "//", such as https://your-app.com/hooks');
  }
  const port = portOf(url);
  if (!portAllowed(port, policy)) throw invalidField(field, portRefusal(port));
  if (!policy.allowInsecure) {
    const refusal = literalHostRefusal(url.hostname, policy);
    if (refusal) throw invalidField(field, `must not point at an internal address: ${refusal}`);
  }
  return url.href;
}

/**
 * Why a literal host is refused, or undefined. The WHATWG parser has already turned every IPv4
 * notation inet_aton accepts into a dotted quad; parseIpLiteral reads the raw notations as well.
 * `localhost` names always mean loopback (RFC 6761), so they are judged as 127.0.0.1 and ::1.
 */
export function literalHostRefusal(hostname: string, policy: TargetPolicy): string | undefined {
  const allowList = allowListFrom(policy.allowedCidrs);
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) {
    const v4 = checkAddress('127.0.0.1', allowList);
    const v6 = checkAddress('::1', allowList);
    if (v4.allowed || v6.allowed) return undefined;
    return `${hostname} is ${v4.reason}`;
  }
  const literal = parseIpLiteral(host);
  if (!literal) return undefined;
  const verdict = checkAddress(literal, allowList);
  return verdict.allowed ? undefined : describeRefusal(hostname, verdict);
}
