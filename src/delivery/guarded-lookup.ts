// The send-time half of the SSRF guard: a DNS lookup for net.connect / tls.connect (and so for
// undici's `connect.lookup`) that resolves the host once, refuses the connection if ANY address it
// got is forbidden, and hands exactly the vetted addresses to the socket. The socket connects to
// what was checked, with no second lookup, so a DNS answer that changes between the check and the
// connect (rebinding) cannot slip through. Literal IP hosts never reach a lookup function (Node
// connects to them directly), so `vetLiteralHost` covers them; the Sender applies both.
import { promises as dns, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { type AddressVerdict, allowListFrom, checkAddress, describeRefusal } from '../domain/address-policy.js';
import { portAllowed, portOf, portRefusal, type TargetPolicy } from '../domain/target-url.js';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a hostname to every address it has. Injectable, so tests can play any DNS answer. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** The operating system's resolver (getaddrinfo: /etc/hosts, then DNS), every address, in its order. */
export const systemResolver: Resolver = (hostname) => dns.lookup(hostname, { all: true });

/** A connection the SSRF guard refused. The message names the host, the address and the reason. */
export class SsrfRefusedError extends Error {
  readonly code = 'ERR_SSRF_REFUSED';
  constructor(
    readonly host: string,
    readonly verdict: Extract<AddressVerdict, { allowed: false }>,
  ) {
    super(`ssrf: ${describeRefusal(host, verdict)}`);
    this.name = 'SsrfRefusedError';
  }
}

/** A connection refused for its port (COUNTERSIGN_ALLOWED_TARGET_PORTS), whatever its address. */
export class PortRefusedError extends Error {
  /** The guard's code: the attempt says what the guard said. */
  readonly code = 'ERR_SSRF_REFUSED';
  constructor(readonly port: number) {
    super(`ssrf: ${portRefusal(port)}`);
    this.name = 'PortRefusedError';
  }
}

/**
 * The refusal for a connection's port, or undefined. Registration refuses such URLs already
 * (target-url.ts); this covers rows stored before the setting changed.
 */
export function vetPort(
  target: { port: string; protocol: string },
  policy: TargetPolicy,
): PortRefusedError | undefined {
  const port = portOf(target);
  return portAllowed(port, policy) ? undefined : new PortRefusedError(port);
}

/** The refusal for a literal IP host, or undefined when it may be connected to (or is a name). */
export function vetLiteralHost(hostname: string, policy: TargetPolicy): SsrfRefusedError | undefined {
  if (policy.allowInsecure) return undefined;
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 0) return undefined;
  const verdict = checkAddress(host, allowListFrom(policy.allowedCidrs));
  return verdict.allowed ? undefined : new SsrfRefusedError(host, verdict);
}

/**
 * Vets every resolved address; returns the refusal for the first forbidden one. Addresses that are
 * not IP literals are refused too: a resolver answering garbage must not open a way through.
 */
export function vetResolved(
  hostname: string,
  addresses: readonly ResolvedAddress[],
  policy: TargetPolicy,
): SsrfRefusedError | undefined {
  if (policy.allowInsecure) return undefined;
  const allowList = allowListFrom(policy.allowedCidrs);
  for (const { address } of addresses) {
    // Strict text only: `127.1` from a resolver is not an address net would connect to as such.
    const verdict: AddressVerdict =
      isIP(address) === 0
        ? { allowed: false, address, kind: 'reserved', reason: 'not an IP address' }
        : checkAddress(address, allowList);
    if (!verdict.allowed) return new SsrfRefusedError(hostname, verdict);
  }
  return undefined;
}

/**
 * A `lookup` for net.connect / tls.connect / undici's `connect.lookup`. Answers in both callback
 * forms Node uses: `(err, address, family)`, and `(err, addresses[])` when called with `all: true`
 * (as net does when it races address families, the default since Node 20).
 */
export function createGuardedLookup(policy: TargetPolicy, resolve: Resolver = systemResolver): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (answer) => {
        // The family of each address is read from the address itself, not trusted from the answer.
        const addresses = answer.map((a) => ({ address: a.address, family: isIP(a.address) }));
        const refused = vetResolved(hostname, addresses, policy);
        if (refused) return callback(refused, []);
        const wanted = wantedFamily(options.family);
        const usable: LookupAddress[] = addresses.filter(
          (a) => a.family !== 0 && (wanted === 0 || a.family === wanted),
        );
        const first = usable[0];
        if (!first) return callback(notFound(hostname), []);
        if (options.all) return callback(null, usable);
        return callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, []),
    );
  };
}

function wantedFamily(family: number | string | undefined): 0 | 4 | 6 {
  if (family === 4 || family === 'IPv4') return 4;
  if (family === 6 || family === 'IPv6') return 6;
  return 0;
}

function notFound(hostname: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
    code: 'ENOTFOUND',
    hostname,
    syscall: 'getaddrinfo',
  });
}
