// Signing-secret rotation: which sealed secrets sign a webhook now. A rotation makes a new secret
// current and retires the old one, which keeps signing until its own expiry; a second rotation
// within the grace period retires the next one beside it, and drops none before its time. Pure:
// values in, values out; the store keeps the list as JSON text.

export interface RetiredSecret {
  sealed: string;
  /** Epoch ms: it signs while now < expires_at. */
  expires_at: number;
}

/** At most this many secrets sign at once (the current one and those in grace). */
export const MAX_SIGNING_SECRETS = 10;

const NONE = '[]';

export function parseRetired(json: string): RetiredSecret[] {
  if (json === NONE || json === '') return [];
  return JSON.parse(json) as RetiredSecret[];
}

/** The retired secrets still in grace at `now`. */
export function retiredInGrace(json: string, now: number): RetiredSecret[] {
  if (json === NONE || json === '') return [];
  return parseRetired(json).filter((r) => r.expires_at > now);
}

/** Every sealed secret that signs at `now`: the current one first, then those in grace. */
export function signingSecretsAt(current: string | null, retiredJson: string, now: number): string[] {
  const secrets = current === null ? [] : [current];
  if (retiredJson === NONE || retiredJson === '') return secrets;
  for (const r of parseRetired(retiredJson)) if (r.expires_at > now) secrets.push(r.sealed);
  return secrets;
}

export type RotationPlan =
  | { ok: true; retiredJson: string; retired: RetiredSecret[] }
  | { ok: false; signing: number; nextExpiry: number };

/**
 * The retired list after `current` is retired until `until` (nothing is retired when `until` is
 * not after `now`: a grace period of 0 drops it at once). Expired entries are dropped. Refused when
 * more than MAX_SIGNING_SECRETS would sign at once; `nextExpiry` says when room frees up.
 */
export function planRotation(current: string | null, retiredJson: string, until: number, now: number): RotationPlan {
  const retired = retiredInGrace(retiredJson, now);
  if (current !== null && until > now) retired.unshift({ sealed: current, expires_at: until });
  // The new current secret is one more.
  if (retired.length + 1 > MAX_SIGNING_SECRETS) {
    return { ok: false, signing: retired.length, nextExpiry: Math.min(...retired.map((r) => r.expires_at)) };
  }
  return { ok: true, retiredJson: retired.length === 0 ? NONE : JSON.stringify(retired), retired };
}

/** The same list with every sealed value passed through `reseal` (master-key rotation). */
export function resealRetired(json: string, reseal: (sealed: string) => string): { json: string; count: number } {
  const retired = parseRetired(json);
  if (retired.length === 0) return { json: NONE, count: 0 };
  return {
    json: JSON.stringify(retired.map((r) => ({ sealed: reseal(r.sealed), expires_at: r.expires_at }))),
    count: retired.length,
  };
}
