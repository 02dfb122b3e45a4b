// Which IP addresses countersign may send to: the address half of the SSRF guard. Pure: no DNS, no
// sockets. It parses literal hosts in every notation inet_aton accepts (the WHATWG URL parser already
// folds most of them into dotted quads; raw strings are handled too), classifies an address against
// the IANA special-purpose registries, sees through the IPv6 forms that embed an IPv4 address, and
// lets an operator's allow-list (COUNTERSIGN_ALLOWED_TARGET_CIDRS) override a refusal.
import { isIP } from 'node:net';

export type Family = 4 | 6;

/** An IP address as a number: 32 bits for IPv4, 128 for IPv6. */
export interface IpAddress {
  family: Family;
  value: bigint;
}

export type ForbiddenKind =
  | 'unspecified'
  | 'this-network'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link-local'
  | 'ietf-protocol'
  | 'documentation'
  | 'benchmarking'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'unique-local'
  | 'site-local'
  | 'not-global-unicast';

/** IPv6 forms that carry an IPv4 address inside them. */
export type Embedding = 'ipv4-mapped' | 'ipv4-compatible' | 'ipv4-translated' | 'nat64' | '6to4' | 'teredo';

export interface Forbidden {
  kind: ForbiddenKind;
  /** Reads after "is": `a private address (RFC 1918)`. */
  reason: string;
  /** Set when the verdict comes from an IPv4 address embedded in an IPv6 one. */
  embedded?: { via: Embedding; address: string };
}

export type AddressVerdict =
  | { allowed: true; address: string; allowListed: boolean }
  | { allowed: false; address: string; kind: ForbiddenKind; reason: string; embedded?: Forbidden['embedded'] };

export interface Cidr {
  family: Family;
  value: bigint;
  prefix: number;
  /** Canonical text, e.g. `10.0.0.0/8`. */
  text: string;
}

export type AllowList = readonly Cidr[];

const BITS: Record<Family, number> = { 4: 32, 6: 128 };
const U32 = 0xffff_ffffn;

// ---------------------------------------------------------------------------------------------
// Parsing and formatting
// ---------------------------------------------------------------------------------------------

/**
 * Parses a literal host: IPv4 in any inet_aton notation (`127.0.0.1`, `2130706433`, `0177.0.0.1`,
 * `0x7f.1`, `127.1`, `10.1.1`, mixed radixes, a trailing dot), or IPv6 with or without brackets
 * (a zone id such as `%eth0` is ignored). Undefined when the text is not an IP literal.
 */
export function parseIpLiteral(text: string): IpAddress | undefined {
  let host = text.trim();
  if (host.startsWith('[') && host.endsWith(']')) return parseIpv6(host.slice(1, -1));
  if (host.includes(':')) return parseIpv6(host);
  if (host.endsWith('.')) host = host.slice(0, -1);
  return parseInetAton(host);
}

/** The inet_aton(3) grammar: one to four parts, each decimal, octal (leading 0) or hex (0x). */
function parseInetAton(text: string): IpAddress | undefined {
  const parts = text.split('.');
  // split() gives at least one part.
  if (parts.length > 4) return undefined;
  const numbers: number[] = [];
  for (const part of parts) {
    const n = parseAtonPart(part);
    if (n === undefined) return undefined;
    numbers.push(n);
  }
  const last = numbers.pop() as number;
  // Each leading part is one byte; the last part fills the bytes that are left.
  if (numbers.some((n) => n > 255)) return undefined;
  if (last >= 2 ** (8 * (4 - numbers.length))) return undefined;
  let value = 0n;
  for (const n of numbers) value = (value << 8n) | BigInt(n);
  value = (value << BigInt(8 * (4 - numbers.length))) | BigInt(last);
  return { family: 4, value };
}

function parseAtonPart(part: string): number | undefined {
  let n: number;
  // Stryker disable MethodExpression: parseInt(…, 16) skips a leading 0x itself and a leading 0 adds nothing to a base-8 value, so neither slice changes a value
  if (/^0x[0-9a-f]*$/i.test(part)) n = part.length === 2 ? 0 : Number.parseInt(part.slice(2), 16);
  else if (/^0[0-7]*$/.test(part)) n = part.length === 1 ? 0 : Number.parseInt(part.slice(1), 8);
  else if (/^[1-9][0-9]*$/.test(part)) n = Number(part);
  else return undefined;
  // Stryker restore MethodExpression
  // Stryker disable next-line ConditionalExpression,LogicalOperator: defence in depth; parseInetAton refuses every value this would let through anyway (a leading part over 255, a last part over what its bytes hold), and the regexes leave no NaN
  return Number.isSafeInteger(n) && n <= 0xffff_ffff ? n : undefined;
}

function parseIpv6(input: string): IpAddress | undefined {
  const zone = input.indexOf('%');
  const unzoned = zone === -1 ? input : input.slice(0, zone);
  // Stryker disable next-line MethodExpression: the text is only read as hex numbers, which ignore case
  const text = unzoned.toLowerCase();
  if (isIP(text) !== 6) return undefined;
  let body = text;
  const groups: number[] = [];
  // A dotted IPv4 tail (`::ffff:1.2.3.4`) stands for the last two groups.
  let tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  // Stryker disable next-line MethodExpression,ArithmeticOperator: once the zone id is gone a dot can only stand after the last colon
  if (body.slice(lastColon + 1).includes('.')) {
    const v4 = body
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail = [((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0)];
    body = body.slice(0, lastColon + 1);
    // Stryker disable next-line StringLiteral: the body was cut just after the last colon, so it always ends with ':' (and with '' too)
    if (body.endsWith(':') && !body.endsWith('::')) body = body.slice(0, -1);
  }
  const halves = body.split('::');
  const head = halves[0] ? halves[0].split(':').map((g) => Number.parseInt(g, 16)) : [];
  // Stryker disable next-line EqualityOperator,ConditionalExpression: with no '::' halves[1] is undefined, so the length test decides nothing
  const rest = halves.length > 1 && halves[1] ? halves[1].split(':').map((g) => Number.parseInt(g, 16)) : [];
  const missing = 8 - head.length - rest.length - tail.length;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: isIP() let only eight groups through, so with no '::' nothing is missing
  groups.push(...head, ...new Array<number>(halves.length > 1 ? missing : 0).fill(0), ...rest, ...tail);
  // Stryker disable next-line ConditionalExpression: defence in depth; isIP() let only eight groups through
  if (groups.length !== 8) return undefined;
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return { family: 6, value };
}

/** Dotted quad for IPv4; RFC 5952 text for IPv6, with IPv4-mapped addresses shown as `::ffff:a.b.c.d`. */
export function formatAddress(ip: IpAddress): string {
  if (ip.family === 4) return formatV4(ip.value);
  if (ip.value >> 32n === 0xffffn) return `::ffff:${formatV4(ip.value & U32)}`;
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(16 * i)) & 0xffffn));
  // The longest run of two or more zero groups (the first one on a tie) becomes `::`.
  let bestStart = -1;
  let bestLength = 1;
  // Stryker disable next-line EqualityOperator: groups[8] is undefined, not a zero group, so i = 8 only steps past the end
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    // Stryker disable next-line EqualityOperator,ConditionalExpression: groups[8] is undefined, not a zero group, so the bound is only a guard
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

function formatV4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

function v4(value: bigint): IpAddress {
  return { family: 4, value: value & U32 };
}

// ---------------------------------------------------------------------------------------------
// CIDRs and the allow-list
// ---------------------------------------------------------------------------------------------

/** Parses `10.0.0.0/8`, `fd00::/8` or a bare address (a /32 or /128). Strict notation only. */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const family = isIP(addressText);
  const ip = family === 0 ? undefined : parseIpLiteral(addressText);
  if (!ip) throw new Error(`"${trimmed}" is not an IPv4 or IPv6 address or CIDR`);
  const bits = BITS[ip.family];
  const prefixText = slash === -1 ? String(bits) : trimmed.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  // Stryker disable next-line ConditionalExpression: the prefix is digits or NaN, never negative, and NaN fails the upper bound too
  if (!(prefix >= 0 && prefix <= bits)) throw new Error(`"${trimmed}" has a prefix length outside 0-${bits}`);
  const hostBits = BigInt(bits - prefix);
  const network = (ip.value >> hostBits) << hostBits;
  if (network !== ip.value) {
    const suggestion = `${formatAddress({ family: ip.family, value: network })}/${prefix}`;
    throw new Error(`"${trimmed}" has host bits set; did you mean ${suggestion}?`);
  }
  return { family: ip.family, value: network, prefix, text: `${formatAddress(ip)}/${prefix}` };
}

/** A comma-separated list of CIDRs (spaces and empty items ignored). Throws on the first bad one. */
export function parseCidrList(text: string): Cidr[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(parseCidr);
}

const compiled = new WeakMap<readonly string[], AllowList>();

/** The allow-list for CIDR texts already validated by parseCidr (as config does), compiled once. */
export function allowListFrom(cidrs: readonly string[] | undefined): AllowList {
  // Stryker disable next-line ConditionalExpression: a shortcut; an empty list compiles to an empty list
  if (!cidrs || cidrs.length === 0) return [];
  let list = compiled.get(cidrs);
  if (!list) {
    list = cidrs.map(parseCidr);
    compiled.set(cidrs, list);
  }
  return list;
}

export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.family !== ip.family) return false;
  const hostBits = BigInt(BITS[cidr.family] - cidr.prefix);
  return ip.value >> hostBits === cidr.value >> hostBits;
}

/** True when a CIDR of the list holds the address, or the IPv4 address an IPv4-mapped one stands for. */
export function isAllowListed(ip: IpAddress, allowList: AllowList): boolean {
  // Stryker disable next-line ConditionalExpression: a shortcut; no CIDR of an empty list holds anything
  if (allowList.length === 0) return false;
  const mapped =
    ip.value >> 32n === 0xffffn &&
    // Stryker disable next-line ConditionalExpression: an IPv4 value has no bits above 32, so the family test never decides
    ip.family === 6
      ? v4(ip.value)
      : undefined;
  return allowList.some((cidr) => cidrContains(cidr, ip) || (mapped !== undefined && cidrContains(cidr, mapped)));
}

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

interface Range {
  cidr: Cidr;
  kind: ForbiddenKind;
  reason: string;
}

function range(text: string, kind: ForbiddenKind, reason: string): Range {
  return { cidr: parseCidr(text), kind, reason };
}

// Most specific first: the first match gives the reason.
const V4_RANGES: Range[] = [
  range('0.0.0.0/32', 'unspecified', 'the unspecified address'),
  range('0.0.0.0/8', 'this-network', 'a "this network" address (0.0.0.0/8)'),
  range('10.0.0.0/8', 'private', 'a private address (RFC 1918)'),
  range('100.64.0.0/10', 'cgnat', 'a carrier-grade NAT shared address (100.64.0.0/10)'),
  range('127.0.0.0/8', 'loopback', 'a loopback address'),
  range('169.254.169.254/32', 'link-local', 'a link-local address (the cloud metadata service)'),
  range('169.254.0.0/16', 'link-local', 'a link-local address'),
  range('172.16.0.0/12', 'private', 'a private address (RFC 1918)'),
  range('192.0.0.0/24', 'ietf-protocol', 'an IETF protocol assignment (192.0.0.0/24)'),
  range('192.0.2.0/24', 'documentation', 'a documentation address (192.0.2.0/24)'),
  range('192.88.99.0/24', 'reserved', 'a reserved address (the retired 6to4 relay anycast, 192.88.99.0/24)'),
  range('192.168.0.0/16', 'private', 'a private address (RFC 1918)'),
  range('198.18.0.0/15', 'benchmarking', 'a benchmarking address (198.18.0.0/15)'),
  range('198.51.100.0/24', 'documentation', 'a documentation address (198.51.100.0/24)'),
  range('203.0.113.0/24', 'documentation', 'a documentation address (203.0.113.0/24)'),
  range('224.0.0.0/4', 'multicast', 'a multicast address'),
  range('255.255.255.255/32', 'broadcast', 'the broadcast address'),
  range('240.0.0.0/4', 'reserved', 'a reserved address (240.0.0.0/4)'),
];

const V6_RANGES: Range[] = [
  range('::/128', 'unspecified', 'the IPv6 unspecified address'),
  range('::1/128', 'loopback', 'the IPv6 loopback address'),
  range('100::/64', 'reserved', 'a discard-only address (100::/64)'),
  range('2001:2::/48', 'benchmarking', 'a benchmarking address (2001:2::/48)'),
  range('2001:10::/28', 'reserved', 'a reserved address (ORCHID, 2001:10::/28)'),
  range('2001:20::/28', 'reserved', 'a reserved address (ORCHIDv2, 2001:20::/28)'),
  range('2001:db8::/32', 'documentation', 'a documentation address (2001:db8::/32)'),
  range('3fff::/20', 'documentation', 'a documentation address (3fff::/20)'),
  range('fc00::/7', 'unique-local', 'an IPv6 unique local address (fc00::/7)'),
  range('fe80::/10', 'link-local', 'an IPv6 link-local address'),
  range('fec0::/10', 'site-local', 'an IPv6 site-local address (fec0::/10)'),
  range('ff00::/8', 'multicast', 'an IPv6 multicast address'),
];

const GLOBAL_UNICAST = parseCidr('2000::/3');
const MAPPED = parseCidr('::ffff:0:0/96');
const COMPATIBLE = parseCidr('::/96');
const TRANSLATED = parseCidr('::ffff:0:0:0/96');
const NAT64 = parseCidr('64:ff9b::/96');
const NAT64_LOCAL = parseCidr('64:ff9b:1::/48');
const SIX_TO_FOUR = parseCidr('2002::/16');
const TEREDO = parseCidr('2001::/32');

const EMBEDDING_NAMES: Record<Embedding, string> = {
  'ipv4-mapped': 'an IPv4-mapped form',
  'ipv4-compatible': 'an IPv4-compatible form',
  'ipv4-translated': 'an IPv4-translated form',
  nat64: 'a NAT64 form',
  '6to4': 'a 6to4 form',
  teredo: 'a Teredo form',
};

function classifyV4(ip: IpAddress): Forbidden | undefined {
  const hit = V4_RANGES.find((r) => cidrContains(r.cidr, ip));
  return hit ? { kind: hit.kind, reason: hit.reason } : undefined;
}

/** Forbidden when any of the IPv4 addresses embedded this way is. */
function throughEmbedding(via: Embedding, candidates: bigint[]): Forbidden | undefined {
  for (const value of candidates) {
    const inner = v4(value);
    const verdict = classifyV4(inner);
    if (verdict) {
      const address = formatAddress(inner);
      return {
        kind: verdict.kind,
        reason: `${EMBEDDING_NAMES[via]} of ${address}, ${verdict.reason}`,
        embedded: { via, address },
      };
    }
  }
  return undefined;
}

function classifyV6(ip: IpAddress): Forbidden | undefined {
  const x = ip.value;
  if (x === 0n || x === 1n) return classifyByTable(ip);
  if (cidrContains(MAPPED, ip)) return throughEmbedding('ipv4-mapped', [x]);
  if (cidrContains(COMPATIBLE, ip)) {
    return (
      throughEmbedding('ipv4-compatible', [x]) ?? {
        kind: 'reserved',
        reason: 'a deprecated IPv4-compatible address (::/96)',
      }
    );
  }
  if (cidrContains(TRANSLATED, ip)) {
    return throughEmbedding('ipv4-translated', [x]) ?? classifyByTable(ip);
  }
  if (cidrContains(NAT64, ip)) return throughEmbedding('nat64', [x]);
  if (cidrContains(NAT64_LOCAL, ip)) {
    // The local-use prefix (RFC 8215) maps to IPv4 in a network-specific way: no way to tell
    // where it ends up, so it is refused whatever the embedded address.
    return (
      throughEmbedding('nat64', [x]) ?? {
        kind: 'reserved',
        reason: 'a local-use NAT64 address (64:ff9b:1::/48) whose IPv4 destination is network-specific',
      }
    );
  }
  if (cidrContains(SIX_TO_FOUR, ip)) {
    const embedded = throughEmbedding('6to4', [x >> 80n]);
    // Stryker disable next-line ConditionalExpression: no range of the table lies in 2002::/16, all of it global unicast, so the table allows what falls through
    if (embedded) return embedded;
  }
  if (cidrContains(TEREDO, ip)) {
    // Teredo: the server's IPv4 in bits 32-63, the client's (bit-inverted) in the last 32 bits.
    const embedded = throughEmbedding('teredo', [x >> 64n, ~x]);
    // Stryker disable next-line ConditionalExpression: no range of the table lies in 2001::/32, all of it global unicast, so the table allows what falls through
    if (embedded) return embedded;
  }
  return classifyByTable(ip);
}

function classifyByTable(ip: IpAddress): Forbidden | undefined {
  const hit = V6_RANGES.find((r) => cidrContains(r.cidr, ip));
  if (hit) return { kind: hit.kind, reason: hit.reason };
  if (!cidrContains(GLOBAL_UNICAST, ip)) {
    return { kind: 'not-global-unicast', reason: 'not a global unicast IPv6 address (outside 2000::/3)' };
  }
  return undefined;
}

/** Why countersign must not send to this address, or undefined when it may. Ignores the allow-list. */
export function classifyAddress(ip: IpAddress): Forbidden | undefined {
  return ip.family === 4 ? classifyV4(ip) : classifyV6(ip);
}

/**
 * The verdict for one address under an allow-list. Text that is not an IP literal is refused
 * (a resolver that answers garbage must not open a way through).
 */
// Stryker disable next-line ArrayDeclaration: a list holding a string in place of a CIDR allows nothing (a string has no family), like the empty one
export function checkAddress(address: string | IpAddress, allowList: AllowList = []): AddressVerdict {
  const ip = typeof address === 'string' ? parseIpLiteral(address) : address;
  if (!ip) {
    const text = String(address);
    return { allowed: false, address: text, kind: 'reserved', reason: 'not an IP address' };
  }
  const text = formatAddress(ip);
  const allowListed = isAllowListed(ip, allowList);
  if (allowListed) return { allowed: true, address: text, allowListed };
  const forbidden = classifyAddress(ip);
  if (!forbidden) return { allowed: true, address: text, allowListed };
  return { allowed: false, address: text, ...forbidden };
}

/** `10.0.0.1 is a private address (RFC 1918)` or `db.internal resolves to 10.0.0.1, a private address (RFC 1918)`. */
export function describeRefusal(host: string, verdict: { address: string; reason: string }): string {
  const bare = host.replace(/^\[|\]$/g, '');
  const literal = parseIpLiteral(bare);
  if (literal && formatAddress(literal) === verdict.address) return `${verdict.address} is ${verdict.reason}`;
  return `${bare} resolves to ${verdict.address}, ${verdict.reason}`;
}
