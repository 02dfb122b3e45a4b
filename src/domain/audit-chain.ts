// A document's audit trail is a hash chain: every entry carries the hash of the one before it and
// its own, over the previous hash and the entry's canonical JSON. Changing, removing or reordering
// any stored entry breaks the chain at that entry, and the document row keeps the head (the last
// hash and sequence number), so cutting entries off the end is caught too. Pure: no I/O.
//
// Three versions. Version 3 (every entry made now) is an HMAC-SHA256 under the chain key, a random
// key sealed by the master key, over a text that names the entry's document: someone who can write
// the database but holds no master key cannot recompute a hash, so cannot rewrite the trail and
// its head and have it verify, nor move a whole trail, head and all, onto another document.
// Version 2 is the same without the document (entries made before version 3); version 1 (entries
// made before the key existed) is plain SHA-256. Old entries verify as they always did, but a
// version-1 entry dated after the key was made, or after a keyed entry, does not verify, and a
// version-2 entry after a version-3 one does not either: a rewrite cannot fall back to an older
// form.
//
// What is personal in an entry (the actor, the client's IP and user agent, the detail, which may
// hold a decline reason) enters the chain as a salted commitment: SHA-256 of a random per-entry
// salt and those fields' canonical JSON. Verification checks the fields against the commitment,
// and the commitment through the chain. An erasure (POST /v1/erasure) deletes the fields and the
// salt and keeps the commitment: the chain still verifies, and what was erased can no longer be
// recovered from it, not even by guessing an address, since the salt is gone too.
//
// The document's status and title are held to the chain too: the status is what its actions add
// up to (created: draft, sent, completed, declined), and the title is the one the `created` entry
// committed to (until an erasure removes both).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

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

/** The chain key and when it was made (sealed together: neither can be changed without the master key). */
export interface ChainKey {
  key: Buffer;
  /** Epoch ms. Entries from then on are version 2. */
  since: number;
}

export type HashVersion = 1 | 2 | 3;

export interface AuditEntry extends Omit<AuditFacts, 'actor' | 'ip' | 'user_agent' | 'detail'> {
  /**
   * 3: HMAC-SHA256 under the chain key, the document named; 2: the same without the document;
   * 1: SHA-256 (entries made before the chain key existed).
   */
  v: HashVersion;
  /** Null once erased, as are ip, user_agent and detail. */
  actor: string | null;
  ip: string | null;
  user_agent: string | null;
  detail: Record<string, string> | null;
  /** Hex; null once erased. */
  salt: string | null;
  /** SHA-256 (hex) of the salt and the personal fields' canonical JSON. */
  personal: string;
  prev_hash: string;
  hash: string;
}

/**
 * JSON with object keys sorted at every level and no white space: one text for one value,
 * whichever order its keys were built in. Only JSON's own shapes are allowed (objects, lists,
 * strings, booleans, finite numbers, null).
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
      .sort(([a], [b]) =>
        // Equivalent mutant, left to survive (a disable comment would also hide `a >= b` here,
        // which the tests kill): `a <= b` orders the same, an object's keys being distinct.
        a < b
          ? -1
          : // Stryker disable next-line EqualityOperator,ConditionalExpression: V8's sort (insertion sort and TimSort alike) only asks whether the answer is below 0, so a 1 turned into 0 (the `a > b` test made true, false, >= or <=) orders an object's distinct keys the same; checked over random key sets
            a > b
            ? 1
            : 0,
      );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new Error(`canonical JSON cannot hold a ${typeof value}`);
}

/** The commitment to an entry's personal fields under its salt. */
export function personalCommitment(
  salt: string,
  fields: Pick<AuditFacts, 'actor' | 'ip' | 'user_agent' | 'detail'>,
): string {
  const text = canonicalJson({
    actor: fields.actor,
    ip: fields.ip,
    user_agent: fields.user_agent,
    detail: fields.detail,
  });
  return createHash('sha256').update(salt).update(text).digest('hex');
}

type Hashed = Pick<AuditEntry, 'seq' | 'at' | 'action' | 'personal'>;

/**
 * What an entry's hash covers, as canonical JSON (the time as RFC 3339 with milliseconds): from
 * version 2 on with the version, from version 3 on with the document's id.
 */
export function entryText(entry: Hashed & { v: HashVersion }, documentId?: string): string {
  const fields = {
    seq: entry.seq,
    at: new Date(entry.at).toISOString(),
    action: entry.action,
    personal: entry.personal,
  };
  if (entry.v === 1) return canonicalJson(fields);
  if (entry.v === 2) return canonicalJson({ ...fields, v: 2 });
  if (documentId === undefined) throw new Error('a version-3 entry is hashed with its document id');
  return canonicalJson({ ...fields, v: 3, document: documentId });
}

/** Version 1: SHA-256 over the previous hash and the entry's text. */
export function entryHashV1(prevHash: string, entry: Hashed): string {
  return createHash('sha256')
    .update(prevHash)
    .update(entryText({ ...entry, v: 1 }))
    .digest('hex');
}

/** Versions 2 and 3: HMAC-SHA256 under the chain key over the previous hash and the entry's text. */
export function entryHashKeyed(
  key: Buffer,
  prevHash: string,
  entry: Hashed & { v: 2 | 3 },
  documentId?: string,
): string {
  return createHmac('sha256', key).update(prevHash).update(entryText(entry, documentId)).digest('hex');
}

function entryHash(key: Buffer, prevHash: string, entry: AuditEntry, documentId: string): string {
  return entry.v === 1
    ? entryHashV1(prevHash, entry)
    : entryHashKeyed(key, prevHash, { ...entry, v: entry.v }, documentId);
}

/**
 * The next entry (version 3) of the chain of document `documentId` whose head is `prevHash`, with
 * a fresh salt unless one is given.
 */
export function chainEntry(
  key: Buffer,
  documentId: string,
  prevHash: string,
  facts: AuditFacts,
  salt = randomBytes(16).toString('hex'),
): AuditEntry {
  const personal = personalCommitment(salt, facts);
  const entry = { ...facts, v: 3 as const, salt, personal };
  return { ...entry, prev_hash: prevHash, hash: entryHashKeyed(key, prevHash, entry, documentId) };
}

/** The document status a trail's actions add up to. */
export function statusAfter(actions: readonly AuditAction[]): string | undefined {
  let status: string | undefined;
  for (const action of actions) {
    if (action === 'created') status = 'draft';
    else if (action === 'sent' || action === 'completed' || action === 'declined') status = action;
  }
  return status;
}

/** The entry with its personal fields and salt removed: the chain still verifies. */
export function erasedEntry(entry: AuditEntry): AuditEntry {
  return { ...entry, actor: null, ip: null, user_agent: null, detail: null, salt: null };
}

export type ChainBreak =
  | { seq: number; reason: 'sequence' | 'prev_hash' | 'hash' | 'version' }
  | { seq: number; reason: 'head' | 'status' | 'title' };

/** The document as its row says, which the chain must bear out. */
export interface ChainHead {
  /** The document's id, which version-3 entries are hashed with. */
  documentId: string;
  seq: number;
  hash: string;
  /** The document's status and title; left out, they are not checked. */
  status?: string;
  title?: string;
}

export interface ChainVerdict {
  valid: boolean;
  entries: number;
  /** The first entry that does not hold, and why; null when the chain verifies. */
  firstBroken: ChainBreak | null;
}

/**
 * Recomputes the chain, entries in sequence order, against the head the document row keeps. The
 * first entry whose number, version, previous hash or own hash does not hold is named; a chain
 * that holds but ends before the head's sequence number (entries cut off the end) breaks at the
 * first missing one; a status or title the chain does not bear out breaks at the last entry, or
 * at the `created` one.
 */
export function verifyChain(entries: AuditEntry[], head: ChainHead, chainKey: ChainKey): ChainVerdict {
  let prev = GENESIS_HASH;
  /** The newest hash version seen so far in the chain: no entry after it may use an older one. */
  let newest = 1;
  for (const [i, entry] of entries.entries()) {
    const broken = (reason: 'sequence' | 'prev_hash' | 'hash' | 'version'): ChainVerdict => ({
      valid: false,
      entries: entries.length,
      firstBroken: { seq: entry.seq, reason },
    });
    if (entry.seq !== i + 1) return broken('sequence');
    if (entry.v !== 1 && entry.v !== 2 && entry.v !== 3) return broken('version');
    // Unkeyed only before the key existed; never an older form after a newer one.
    if (entry.v === 1 && entry.at >= chainKey.since) return broken('version');
    if (entry.v < newest) return broken('version');
    newest = entry.v;
    if (entry.prev_hash !== prev) return broken('prev_hash');
    if (!sameText(entryHash(chainKey.key, prev, entry, head.documentId), entry.hash)) return broken('hash');
    // An erased entry (no salt) has nothing left to check against its commitment; any other must
    // hold exactly the fields it committed to.
    if (entry.salt !== null && personalCommitment(entry.salt, entry as AuditFacts) !== entry.personal) {
      return broken('hash');
    }
    // Erased means every personal field is gone: a detail written back (a decline reason turned
    // into anything else) has no commitment to answer to, so it does not hold either.
    if (
      entry.salt === null &&
      (entry.actor !== null || entry.ip !== null || entry.user_agent !== null || entry.detail !== null)
    ) {
      return broken('hash');
    }
    prev = entry.hash;
  }
  const invalid = (firstBroken: ChainBreak): ChainVerdict => ({ valid: false, entries: entries.length, firstBroken });
  if (entries.length !== head.seq || prev !== (head.seq === 0 ? GENESIS_HASH : head.hash)) {
    return invalid({ seq: entries.length + 1, reason: 'head' });
  }
  if (head.status !== undefined && entries.length > 0 && statusAfter(entries.map((e) => e.action)) !== head.status) {
    return invalid({ seq: entries.length, reason: 'status' });
  }
  const created = entries[0];
  // Equivalent mutant, left to survive: `created.salt !== null` made true changes nothing, since an
  // erased entry that got this far has no detail (checked above) and so no title either.
  const committedTitle = created?.action === 'created' && created.salt !== null ? created.detail?.title : undefined;
  if (head.title !== undefined && committedTitle !== undefined && committedTitle !== head.title) {
    return invalid({ seq: 1, reason: 'title' });
  }
  return { valid: true, entries: entries.length, firstBroken: null };
}

/** Compares a computed MAC with a given one in constant time. */
function sameText(expected: string, given: string): boolean {
  const x = Buffer.from(expected);
  const y = Buffer.from(given);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The signature of a document's audit link: HMAC-SHA256 under a key derived from the master key,
 * over the document id, base64url. A receiver opens the link without an API token; nobody can
 * make one for another document.
 */
export function auditLinkSignature(key: Buffer, documentId: string): string {
  return createHmac('sha256', key).update(`audit-link v1 ${documentId}`).digest('base64url');
}

/**
 * A link of a document whose links were revoked, or that expires: signed over the document id,
 * its link epoch (moved on by each revocation) and the expiry (epoch ms, empty for none).
 */
export function auditLinkSignatureV2(key: Buffer, documentId: string, epoch: number, expiresAt?: number): string {
  return createHmac('sha256', key)
    .update(`audit-link v2 ${documentId} ${epoch} ${expiresAt ?? ''}`)
    .digest('base64url');
}

/** The signature a link of this document gets now: the first form while it can be (never revoked, no expiry). */
export function auditLinkSig(key: Buffer, documentId: string, epoch: number, expiresAt?: number): string {
  return epoch === 0 && expiresAt === undefined
    ? auditLinkSignature(key, documentId)
    : auditLinkSignatureV2(key, documentId, epoch, expiresAt);
}

export type AuditLinkVerdict = 'valid' | 'expired' | 'forged';

/**
 * Whether a link opens the trail: its signature matches the document's current epoch (a revoked
 * link was signed over an earlier one, so it reads as forged) and it has not expired.
 */
export function checkAuditLink(
  key: Buffer,
  documentId: string,
  epoch: number,
  link: { sig: string; expiresAt?: number },
  now: number,
): AuditLinkVerdict {
  if (!sameText(auditLinkSig(key, documentId, epoch, link.expiresAt), link.sig)) return 'forged';
  // Equivalent mutant, left to survive: `link.expiresAt !== undefined` made true changes nothing,
  // `now >= undefined` being false.
  return link.expiresAt !== undefined && now >= link.expiresAt ? 'expired' : 'valid';
}
