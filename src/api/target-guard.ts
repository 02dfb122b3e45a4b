// The registration-time half of the SSRF guard: the pure URL checks (scheme, credentials, literal
// addresses), then the host is resolved and refused when any address it has is forbidden. A host
// that does not resolve (or not in time) is accepted: the send-time guard resolves it again before
// every connection, so nothing is lost by waiting, and a receiver whose DNS is not live yet can
// still be registered.
import { type Resolver, vetResolved } from '../delivery/guarded-lookup.js';
import { describeRefusal, parseIpLiteral } from '../domain/address-policy.js';
import { checkTargetUrl, type TargetPolicy } from '../domain/target-url.js';
import { invalidField } from '../errors.js';

/** How long registration waits for DNS before accepting the URL and leaving it to send time. */
export const REGISTRATION_LOOKUP_TIMEOUT_MS = 5_000;

/** Returns the normalised URL, or throws a 400 naming `field` with the reason. */
export async function checkTargetUrlResolved(
  raw: string,
  field: string,
  policy: TargetPolicy,
  resolve: Resolver,
  timeoutMs = REGISTRATION_LOOKUP_TIMEOUT_MS,
): Promise<string> {
  const href = checkTargetUrl(raw, field, policy);
  if (policy.allowInsecure) return href;
  const hostname = new URL(href).hostname;
  // Literal addresses were judged by checkTargetUrl; there is nothing to resolve.
  if (parseIpLiteral(hostname)) return href;
  const addresses = await resolveWithin(resolve, hostname, timeoutMs);
  if (addresses === undefined) return href;
  const refused = vetResolved(hostname, addresses, policy);
  if (refused) {
    throw invalidField(field, `must not point at an internal address: ${describeRefusal(hostname, refused.verdict)}`);
  }
  return href;
}

/** The addresses, or undefined when the name does not resolve or the resolver is too slow. */
async function resolveWithin(
  resolve: Resolver,
  hostname: string,
  timeoutMs: number,
): Promise<Awaited<ReturnType<Resolver>> | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((done) => {
    timer = setTimeout(() => done(undefined), timeoutMs);
  });
  try {
    return await Promise.race([resolve(hostname).catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}
