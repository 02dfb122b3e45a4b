// A document's audit trail is a hash chain: every entry carries the hash of the one before it and
// its own, SHA-256 over the previous hash and the entry's canonical JSON. Changing, removing or
// reordering any stored entry breaks the chain at that entry, and the document row keeps the head
// (the last hash and sequence number), so cutting entries off the end is caught too. Pure: no I/O.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The previous hash of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** What an entry records; `hash` and `prev_hash` are computed over the rest. */
export interface AuditFacts {
  seq: number;
  /** Epoch ms. */
  at: number;
  /** The token's id (`tok_…`) for steps made through the API, or the signer's e-mail address. */
  actor: string;
  action: AuditAction;
  ip: string | null;
  user_agent: string | null;
  /** What the step named: a signer's id, a decline reason. */
  detail: Record<string, string>;
}

export type AuditAction = 'created' | 'sent' | 'signed' | 'declined' | 'completed';

export interface AuditEntry extends AuditFacts {
  prev_hash: string;
  hash: string;
}

/**
 * JSON with object keys sorted at every level and no white space: one text for one value,
 * whichever order its keys were built in. Only the shapes an entry holds (objects, strings,
 * finite numbers, null) are allowed.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error('canonical JSON holds finite numbers only');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new Error(`canonical JSON cannot hold a ${typeof value}`);
}

/** The facts an entry's hash covers, as canonical JSON (the time as RFC 3339 with milliseconds). */
export function entryText(facts: AuditFacts): string {
  return canonicalJson({
    seq: facts.seq,
    at: new Date(facts.at).toISOString(),
    actor: facts.actor,
    action: facts.action,
    ip: facts.ip,
    user_agent: facts.user_agent,
    detail: facts.detail,
  });
}

export function entryHash(prevHash: string, facts: AuditFacts): string {
  return createHash('sha256').update(prevHash).update(entryText(facts)).digest('hex');
}

/** The next entry of a chain whose head is `prevHash`. */
export function chainEntry(prevHash: string, facts: AuditFacts): AuditEntry {
  return { ...facts, prev_hash: prevHash, hash: entryHash(prevHash, facts) };
}

export type ChainBreak = { seq: number; reason: 'sequence' | 'prev_hash' | 'hash' } | { seq: number; reason: 'head' };

export interface ChainVerdict {
  valid: boolean;
  entries: number;
  /** The first entry that does not hold, and why; null when the chain verifies. */
  firstBroken: ChainBreak | null;
}

/**
 * Recomputes the chain, entries in sequence order, against the head the document row keeps. The
 * first entry whose number, previous hash or own hash does not hold is named; a chain that holds
 * but ends before the head's sequence number (entries cut off the end) breaks at the first missing one.
 */
export function verifyChain(entries: AuditEntry[], head: { seq: number; hash: string }): ChainVerdict {
  let prev = GENESIS_HASH;
  for (const [i, entry] of entries.entries()) {
    const broken = (reason: 'sequence' | 'prev_hash' | 'hash'): ChainVerdict => ({
      valid: false,
      entries: entries.length,
      firstBroken: { seq: entry.seq, reason },
    });
    if (entry.seq !== i + 1) return broken('sequence');
    if (entry.prev_hash !== prev) return broken('prev_hash');
    if (entryHash(prev, entry) !== entry.hash) return broken('hash');
    prev = entry.hash;
  }
  if (entries.length !== head.seq || prev !== (head.seq === 0 ? GENESIS_HASH : head.hash)) {
    return { valid: false, entries: entries.length, firstBroken: { seq: entries.length + 1, reason: 'head' } };
  }
  return { valid: true, entries: entries.length, firstBroken: null };
}

/**
 * The signature of a document's audit link: HMAC-SHA256 under a key derived from the master key,
 * over the document id, base64url. A receiver opens the link without an API token; nobody can
 * make one for another document.
 */
export function auditLinkSignature(key: Buffer, documentId: string): string {
  return createHmac('sha256', key).update(`audit-link v1 ${documentId}`).digest('base64url');
}

export function auditLinkSignatureValid(key: Buffer, documentId: string, signature: string): boolean {
  const expected = Buffer.from(auditLinkSignature(key, documentId));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
