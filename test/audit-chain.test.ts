// The audit chain's rules as pure functions (src/domain/audit-chain.ts): the fixed test vector,
// verification and where it breaks, the key, the versions, erasure, status and title, and the
// signed audit links. The same rules against rows changed in a real database, and the links
// through the API, are in documents.test.ts.
import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AuditEntry,
  auditLinkSig,
  auditLinkSignature,
  auditLinkSignatureV2,
  canonicalJson,
  chainEntry,
  checkAuditLink,
  entryHashKeyed,
  entryHashV1,
  entryText,
  erasedEntry,
  GENESIS_HASH,
  statusAfter,
  verifyChain,
} from '../src/domain/audit-chain.js';

describe('the audit chain', () => {
  const KEY = { key: Buffer.alloc(32, 7), since: Date.UTC(2026, 0, 1) };
  const DOC = 'doc_1';
  const facts = (seq: number, actor = 'tok_1') => ({
    seq,
    at: Date.UTC(2026, 11, 4, 9, 0, seq),
    actor,
    action: 'signed' as const,
    ip: '10.0.0.1',
    user_agent: 'curl/8',
    detail: { signer_id: `sgn_${seq}` },
  });
  function chain(n: number): AuditEntry[] {
    const out: AuditEntry[] = [];
    let prev = GENESIS_HASH;
    for (let seq = 1; seq <= n; seq++) {
      const entry = chainEntry(KEY.key, DOC, prev, facts(seq));
      out.push(entry);
      prev = entry.hash;
    }
    return out;
  }
  const head = (entries: AuditEntry[]) => ({
    documentId: DOC,
    seq: entries.length,
    hash: entries[entries.length - 1]?.hash ?? GENESIS_HASH,
  });
  /** What someone with write access but no key can do: recompute the whole chain unkeyed. */
  function rehashedWithoutKey(entries: AuditEntry[]): AuditEntry[] {
    let prev = GENESIS_HASH;
    return entries.map((e) => {
      const hash = entryHashV1(prev, e);
      const out = { ...e, v: 1 as const, prev_hash: prev, hash };
      prev = hash;
      return out;
    });
  }

  it('writes canonical JSON: keys sorted at every level, whatever order they were built in', () => {
    expect(canonicalJson({ b: 1, a: { d: 'x', c: null } })).toBe('{"a":{"c":null,"d":"x"},"b":1}');
    expect(canonicalJson({ a: { c: null, d: 'x' }, b: 1 })).toBe(canonicalJson({ b: 1, a: { d: 'x', c: null } }));
    expect(() => canonicalJson({ n: Number.NaN })).toThrow();
  });

  it('hashes an entry exactly so: a fixed vector pins the format, the time included', () => {
    const salt = '00112233445566778899aabbccddeeff';
    const entry = chainEntry(KEY.key, DOC, GENESIS_HASH, facts(1), salt);
    expect(entry.personal).toBe(
      createHash('sha256')
        .update(salt)
        .update('{"actor":"tok_1","detail":{"signer_id":"sgn_1"},"ip":"10.0.0.1","user_agent":"curl/8"}')
        .digest('hex'),
    );
    const text = `{"action":"signed","at":"2026-12-04T09:00:01.000Z","document":"doc_1","personal":"${entry.personal}","seq":1,"v":3}`;
    expect(entry.v).toBe(3);
    expect(entry.hash).toBe(createHmac('sha256', KEY.key).update(GENESIS_HASH).update(text).digest('hex'));
    expect(entry.hash).toBe('a64b31ed0dede0f730472f0e9f151f552d77d71f95e7b66814b1529d8a1b000e');
    // Entries made in version 2 (before the document was in the text) verify as they were made.
    const v2Text = `{"action":"signed","at":"2026-12-04T09:00:01.000Z","personal":"${entry.personal}","seq":1,"v":2}`;
    const v2 = {
      ...entry,
      v: 2 as const,
      hash: createHmac('sha256', KEY.key).update(GENESIS_HASH).update(v2Text).digest('hex'),
    };
    expect(v2.hash).toBe('f9830702987aa4f499be118050c29d8cc307f45fcdbcb0a9728d2699f7aa1f3c');
    expect(verifyChain([v2], head([v2]), KEY).valid).toBe(true);
    // Each field of the text is in the hash: the time above all, for a trail of signatures.
    for (const changed of [
      { at: entry.at + 1 },
      { seq: 2 },
      { action: 'declined' as const },
      { personal: '0'.repeat(64) },
    ]) {
      expect(verifyChain([{ ...entry, ...changed }], head([entry]), KEY).valid, JSON.stringify(changed)).toBe(false);
    }
    // And the document: the same entry under another document's head does not verify.
    expect(verifyChain([entry], { ...head([entry]), documentId: 'doc_2' }, KEY).firstBroken).toEqual({
      seq: 1,
      reason: 'hash',
    });
  });

  it('verifies an intact chain and names the first entry that does not hold', () => {
    const entries = chain(4);
    expect(verifyChain(entries, head(entries), KEY)).toEqual({ valid: true, entries: 4, firstBroken: null });
    expect(verifyChain([], { documentId: DOC, seq: 0, hash: GENESIS_HASH }, KEY)).toEqual({
      valid: true,
      entries: 0,
      firstBroken: null,
    });

    const altered = entries.map((e) => ({ ...e }));
    (altered[1] as AuditEntry).actor = 'mallory@example.com';
    expect(verifyChain(altered, head(entries), KEY).firstBroken).toEqual({ seq: 2, reason: 'hash' });

    // Recomputing the altered entry's commitment and hash does not help: the next one names the old hash.
    const rehashed = entries.map((e) => ({ ...e }));
    rehashed[1] = chainEntry(
      KEY.key,
      DOC,
      entries[0]?.hash as string,
      { ...facts(2), actor: 'mallory@example.com' },
      entries[1]?.salt as string,
    );
    expect(verifyChain(rehashed, head(entries), KEY).firstBroken).toEqual({ seq: 3, reason: 'prev_hash' });

    // Erased (personal fields and salt gone, commitment kept), the chain still verifies; an erased
    // entry given an actor, or a detail, again does not.
    const erased = entries.map((e, i) => (i === 1 ? erasedEntry(e) : e));
    expect(erased[1]).toMatchObject({ actor: null, ip: null, user_agent: null, detail: null, salt: null });
    expect(verifyChain(erased, head(entries), KEY)).toEqual({ valid: true, entries: 4, firstBroken: null });
    const refilled = erased.map((e, i) => (i === 1 ? { ...e, actor: 'tok_1' } : e));
    expect(verifyChain(refilled, head(entries), KEY).firstBroken).toEqual({ seq: 2, reason: 'hash' });
    const redetailed = erased.map((e, i) => (i === 1 ? { ...e, detail: { reason: 'all fine' } } : e));
    expect(verifyChain(redetailed, head(entries), KEY).firstBroken).toEqual({ seq: 2, reason: 'hash' });

    expect(verifyChain([entries[0], entries[2], entries[3]] as AuditEntry[], head(entries), KEY).firstBroken).toEqual({
      seq: 3,
      reason: 'sequence',
    });
    // Entries cut off the end: the chain that is left holds, but not up to the head.
    expect(verifyChain(entries.slice(0, 3), head(entries), KEY).firstBroken).toEqual({ seq: 4, reason: 'head' });
  });

  it('does not verify a chain rewritten without the key, nor under another key', () => {
    const entries = chain(3);
    // Every hash and the head recomputed, unkeyed: dated after the key was made, refused.
    const forged = rehashedWithoutKey(entries);
    expect(verifyChain(forged, head(forged), KEY).firstBroken).toEqual({ seq: 1, reason: 'version' });
    // Claiming the keyed version does not help either: the HMAC needs the key.
    const claimed = forged.map((e) => ({ ...e, v: 2 as const }));
    expect(verifyChain(claimed, head(claimed), KEY).firstBroken).toEqual({ seq: 1, reason: 'hash' });
    expect(verifyChain(entries, head(entries), { ...KEY, key: Buffer.alloc(32, 8) }).firstBroken).toEqual({
      seq: 1,
      reason: 'hash',
    });
  });

  it('keeps verifying unkeyed entries made before the key existed, and only those', () => {
    const before = { ...KEY, since: Date.UTC(2027, 0, 1) };
    const legacy = rehashedWithoutKey(chain(2));
    expect(verifyChain(legacy, head(legacy), before)).toEqual({ valid: true, entries: 2, firstBroken: null });
    // A keyed entry may follow unkeyed ones; an unkeyed one may not follow a keyed one.
    const third = chainEntry(KEY.key, DOC, legacy[1]?.hash as string, facts(3));
    const mixed = [...legacy, third];
    expect(verifyChain(mixed, head(mixed), before).valid).toBe(true);
    let prev = third.hash;
    const fourth = { ...chainEntry(KEY.key, DOC, prev, facts(4)), v: 1 as const };
    fourth.hash = entryHashV1(prev, fourth);
    prev = fourth.hash;
    const downgraded = [...mixed, fourth];
    expect(verifyChain(downgraded, head(downgraded), before).firstBroken).toEqual({ seq: 4, reason: 'version' });
    // Nor may an entry keyed without its document (version 2) follow one keyed with it.
    const withoutDocument = { ...chainEntry(KEY.key, DOC, third.hash, facts(4)), v: 2 as const };
    withoutDocument.hash = entryHashKeyed(KEY.key, third.hash, withoutDocument);
    const back = [...mixed, withoutDocument];
    expect(verifyChain(back, head(back), before).firstBroken).toEqual({ seq: 4, reason: 'version' });
    // The other way round is how a trail begun before version 3 goes on.
    const first = { ...chainEntry(KEY.key, DOC, GENESIS_HASH, facts(1)), v: 2 as const };
    first.hash = entryHashKeyed(KEY.key, GENESIS_HASH, first);
    const upgraded = [first, chainEntry(KEY.key, DOC, first.hash, facts(2))];
    expect(verifyChain(upgraded, head(upgraded), KEY)).toEqual({ valid: true, entries: 2, firstBroken: null });
  });

  it('holds the document’s status and title to what the chain committed to', () => {
    let prev = GENESIS_HASH;
    const entries = (['created', 'sent', 'declined'] as const).map((action, i) => {
      const detail: Record<string, string> =
        action === 'created' ? { title: 'NDA', signers: '1' } : { signer_id: 'sgn_1' };
      const entry = chainEntry(KEY.key, DOC, prev, { ...facts(i + 1), action, detail });
      prev = entry.hash;
      return entry;
    });
    const row = { ...head(entries), status: 'declined', title: 'NDA' };
    expect(verifyChain(entries, row, KEY).valid).toBe(true);
    expect(verifyChain(entries, { ...row, status: 'completed' }, KEY).firstBroken).toEqual({
      seq: 3,
      reason: 'status',
    });
    expect(verifyChain(entries, { ...row, title: 'Another NDA' }, KEY).firstBroken).toEqual({
      seq: 1,
      reason: 'title',
    });
    // Erased, the first entry commits to no title any more: the erased title stands.
    const erased = entries.map((e, i) => (i === 0 ? erasedEntry(e) : e));
    expect(verifyChain(erased, { ...row, title: '(erased)' }, KEY).valid).toBe(true);
  });

  it('writes canonical JSON for every shape an entry holds, and refuses the rest', () => {
    expect(canonicalJson({ ok: true, no: false, n: -1.5, s: 'é"', z: null })).toBe(
      '{"n":-1.5,"no":false,"ok":true,"s":"é\\"","z":null}',
    );
    // Lists keep their order; objects inside them have their keys sorted.
    expect(canonicalJson([3, 'a', { b: 1, a: [true, null] }])).toBe('[3,"a",{"a":[true,null],"b":1}]');
    expect(canonicalJson([])).toBe('[]');
    // A field left undefined is no field at all, as in JSON.stringify.
    expect(canonicalJson({ b: undefined, a: 1 })).toBe('{"a":1}');
    expect(canonicalJson({ a: 1, b: undefined })).toBe(canonicalJson({ a: 1 }));
    expect(() => canonicalJson(Number.POSITIVE_INFINITY)).toThrow('canonical JSON holds finite numbers only');
    expect(() => canonicalJson({ f: () => 1 })).toThrow('canonical JSON cannot hold a function');
    expect(() => canonicalJson(undefined)).toThrow('canonical JSON cannot hold a undefined');
    expect(() => canonicalJson(1n)).toThrow('canonical JSON cannot hold a bigint');
    // One text per value, whichever order the keys were built in: the keys come out in code-unit order.
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.constant(null))), (record) => {
        const reversed = Object.fromEntries(Object.entries(record).reverse());
        const text = canonicalJson(reversed);
        expect(text).toBe(canonicalJson(record));
        const sorted = Object.keys(record).sort();
        expect(text).toBe(`{${sorted.map((k) => `${JSON.stringify(k)}:${JSON.stringify(record[k])}`).join(',')}}`);
      }),
    );
  });

  it('hashes a version-3 entry only with its document, and a version-1 entry as plain SHA-256', () => {
    const entry = chainEntry(KEY.key, DOC, GENESIS_HASH, facts(1), '00112233445566778899aabbccddeeff');
    expect(() => entryText(entry)).toThrow('a version-3 entry is hashed with its document id');
    expect(() => entryHashKeyed(KEY.key, GENESIS_HASH, { ...entry, v: 3 })).toThrow(
      'a version-3 entry is hashed with its document id',
    );
    const v1Text = `{"action":"signed","at":"2026-12-04T09:00:01.000Z","personal":"${entry.personal}","seq":1}`;
    expect(entryText({ ...entry, v: 1 })).toBe(v1Text);
    expect(entryHashV1(GENESIS_HASH, entry)).toBe(
      createHash('sha256').update(GENESIS_HASH).update(v1Text).digest('hex'),
    );
    expect(entryHashV1(GENESIS_HASH, entry)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('adds the actions up to the document’s status: created is a draft, a signature changes nothing', () => {
    expect(statusAfter([])).toBeUndefined();
    expect(statusAfter(['created'])).toBe('draft');
    expect(statusAfter(['created', 'sent'])).toBe('sent');
    expect(statusAfter(['created', 'sent', 'signed'])).toBe('sent');
    expect(statusAfter(['created', 'sent', 'signed', 'signed', 'completed'])).toBe('completed');
    expect(statusAfter(['created', 'sent', 'signed', 'declined'])).toBe('declined');
    expect(statusAfter(['signed'])).toBeUndefined();
  });

  it('refuses an entry of a version it does not know, and an unkeyed one dated when the key was made', () => {
    const entries = chain(2);
    const unknown = entries.map((e, i) => (i === 1 ? ({ ...e, v: 4 } as unknown as AuditEntry) : e));
    expect(verifyChain(unknown, head(entries), KEY)).toEqual({
      valid: false,
      entries: 2,
      firstBroken: { seq: 2, reason: 'version' },
    });
    // Unkeyed entries are accepted up to the millisecond before the key was made, not at it.
    const dated = (at: number) => {
      const e = { ...chainEntry(KEY.key, DOC, GENESIS_HASH, { ...facts(1), at }), v: 1 as const };
      return { ...e, hash: entryHashV1(GENESIS_HASH, e) };
    };
    const justBefore = dated(KEY.since - 1);
    expect(verifyChain([justBefore], head([justBefore]), KEY).valid).toBe(true);
    const atTheKey = dated(KEY.since);
    expect(verifyChain([atTheKey], head([atTheKey]), KEY).firstBroken).toEqual({ seq: 1, reason: 'version' });
  });

  it('refuses any personal field written back into an erased entry, and a hash of the wrong length', () => {
    const entries = chain(2);
    const erased = entries.map((e, i) => (i === 0 ? erasedEntry(e) : e));
    for (const field of [{ actor: 'tok_1' }, { ip: '10.0.0.1' }, { user_agent: 'curl/8' }, { detail: {} }]) {
      const refilled = erased.map((e, i) => (i === 0 ? { ...e, ...field } : e));
      expect(verifyChain(refilled, head(entries), KEY).firstBroken, JSON.stringify(field)).toEqual({
        seq: 1,
        reason: 'hash',
      });
    }
    // A stored hash cut short is a broken hash, not an exception.
    const short = entries.map((e, i) => (i === 1 ? { ...e, hash: e.hash.slice(0, 10) } : e));
    expect(verifyChain(short, head(entries), KEY).firstBroken).toEqual({ seq: 2, reason: 'hash' });
  });

  it('holds the chain to the head’s sequence number and hash, each on its own', () => {
    const entries = chain(3);
    const broken = { valid: false, entries: 3, firstBroken: { seq: 4, reason: 'head' } };
    expect(verifyChain(entries, { ...head(entries), seq: 4 }, KEY)).toEqual(broken);
    expect(verifyChain(entries, { ...head(entries), seq: 2 }, KEY)).toEqual(broken);
    expect(verifyChain(entries, { ...head(entries), hash: entries[1]?.hash as string }, KEY)).toEqual(broken);
    expect(verifyChain(entries.slice(0, 2), head(entries), KEY)).toEqual({
      valid: false,
      entries: 2,
      firstBroken: { seq: 3, reason: 'head' },
    });
    // A head at sequence 0 names no entry: an empty trail holds whatever its hash field says, and
    // its status is not checked (there are no actions to add up); a head at 0 with entries does not hold.
    expect(verifyChain([], { documentId: DOC, seq: 0, hash: 'f'.repeat(64), status: 'draft' }, KEY)).toEqual({
      valid: true,
      entries: 0,
      firstBroken: null,
    });
    expect(verifyChain(entries, { documentId: DOC, seq: 0, hash: GENESIS_HASH }, KEY).firstBroken).toEqual({
      seq: 4,
      reason: 'head',
    });
  });

  it('checks status and title only where the head names them and the chain commits to them', () => {
    let prev = GENESIS_HASH;
    const entries = (['created', 'sent'] as const).map((action, i) => {
      const detail: Record<string, string> = action === 'created' ? { title: 'NDA' } : { signer_id: 'sgn_1' };
      const entry = chainEntry(KEY.key, DOC, prev, { ...facts(i + 1), action, detail });
      prev = entry.hash;
      return entry;
    });
    const row = { ...head(entries), status: 'sent', title: 'NDA' };
    expect(verifyChain(entries, row, KEY).valid).toBe(true);
    // Left out of the head, neither is checked.
    expect(verifyChain(entries, head(entries), KEY)).toEqual({ valid: true, entries: 2, firstBroken: null });
    expect(verifyChain(entries, { ...row, status: 'draft' }, KEY)).toEqual({
      valid: false,
      entries: 2,
      firstBroken: { seq: 2, reason: 'status' },
    });
    expect(verifyChain(entries, { ...row, title: 'Loan' }, KEY)).toEqual({
      valid: false,
      entries: 2,
      firstBroken: { seq: 1, reason: 'title' },
    });
    // A created entry that committed to no detail at all commits to no title either.
    const bare = chainEntry(KEY.key, DOC, GENESIS_HASH, {
      ...facts(1),
      action: 'created',
      detail: null as unknown as Record<string, string>,
    });
    expect(verifyChain([bare], { ...head([bare]), status: 'draft', title: 'Anything' }, KEY).valid).toBe(true);
  });
});

describe('the audit link', () => {
  const KEY = Buffer.alloc(32, 9);
  const OTHER_KEY = Buffer.alloc(32, 10);
  const NOW = Date.UTC(2026, 11, 4, 12);
  const HOUR = 3_600_000;

  it('signs a document’s first link over the document id alone, and later ones over its epoch and expiry', () => {
    const hmac = (text: string) => createHmac('sha256', KEY).update(text).digest('base64url');
    expect(auditLinkSignature(KEY, 'doc_1')).toBe(hmac('audit-link v1 doc_1'));
    expect(auditLinkSignature(KEY, 'doc_1')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auditLinkSignatureV2(KEY, 'doc_1', 2, 1_800_000_000_000)).toBe(hmac('audit-link v2 doc_1 2 1800000000000'));
    expect(auditLinkSignatureV2(KEY, 'doc_1', 2)).toBe(hmac('audit-link v2 doc_1 2 '));
    expect(auditLinkSignatureV2(KEY, 'doc_1', 0, 0)).toBe(hmac('audit-link v2 doc_1 0 0'));
    // Never revoked and not expiring: the first form, so links handed out before v2 keep working.
    expect(auditLinkSig(KEY, 'doc_1', 0)).toBe(auditLinkSignature(KEY, 'doc_1'));
    expect(auditLinkSig(KEY, 'doc_1', 1)).toBe(auditLinkSignatureV2(KEY, 'doc_1', 1));
    expect(auditLinkSig(KEY, 'doc_1', 0, NOW)).toBe(auditLinkSignatureV2(KEY, 'doc_1', 0, NOW));
    expect(auditLinkSig(KEY, 'doc_1', 3, NOW)).toBe(auditLinkSignatureV2(KEY, 'doc_1', 3, NOW));
  });

  it('opens only the document it was signed for, under the key it was signed with', () => {
    const sig = auditLinkSig(KEY, 'doc_1', 0);
    expect(checkAuditLink(KEY, 'doc_1', 0, { sig }, NOW)).toBe('valid');
    expect(checkAuditLink(KEY, 'doc_2', 0, { sig }, NOW)).toBe('forged');
    expect(checkAuditLink(OTHER_KEY, 'doc_1', 0, { sig }, NOW)).toBe('forged');
    expect(checkAuditLink(KEY, 'doc_1', 0, { sig: '' }, NOW)).toBe('forged');
    expect(checkAuditLink(KEY, 'doc_1', 0, { sig: `${sig}A` }, NOW)).toBe('forged');
    expect(checkAuditLink(KEY, 'doc_1', 0, { sig: sig.slice(0, -1) }, NOW)).toBe('forged');
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.nat(), (a, b, epoch) => {
        fc.pre(a !== b);
        const link = { sig: auditLinkSig(KEY, a, epoch) };
        expect(checkAuditLink(KEY, a, epoch, link, NOW)).toBe('valid');
        expect(checkAuditLink(KEY, b, epoch, link, NOW)).toBe('forged');
      }),
    );
  });

  it('reads a link of an earlier epoch (revoked) as forged, and the epoch and expiry as signed', () => {
    const first = { sig: auditLinkSig(KEY, 'doc_1', 0) };
    expect(checkAuditLink(KEY, 'doc_1', 1, first, NOW)).toBe('forged');
    const second = { sig: auditLinkSig(KEY, 'doc_1', 1) };
    expect(checkAuditLink(KEY, 'doc_1', 1, second, NOW)).toBe('valid');
    expect(checkAuditLink(KEY, 'doc_1', 2, second, NOW)).toBe('forged');
    // The expiry is signed: moved on, left out or added, the link is forged.
    const expiring = { sig: auditLinkSig(KEY, 'doc_1', 1, NOW + HOUR), expiresAt: NOW + HOUR };
    expect(checkAuditLink(KEY, 'doc_1', 1, expiring, NOW)).toBe('valid');
    expect(checkAuditLink(KEY, 'doc_1', 1, { ...expiring, expiresAt: NOW + 2 * HOUR }, NOW)).toBe('forged');
    expect(checkAuditLink(KEY, 'doc_1', 1, { sig: expiring.sig }, NOW)).toBe('forged');
    expect(checkAuditLink(KEY, 'doc_1', 1, { ...second, expiresAt: NOW + HOUR }, NOW)).toBe('forged');
    // An expiring link of a never-revoked document is signed in the second form too.
    const fresh = { sig: auditLinkSig(KEY, 'doc_1', 0, NOW + HOUR), expiresAt: NOW + HOUR };
    expect(checkAuditLink(KEY, 'doc_1', 0, fresh, NOW)).toBe('valid');
    expect(checkAuditLink(KEY, 'doc_1', 0, { sig: fresh.sig }, NOW)).toBe('forged');
  });

  it('expires a link at its expiry, to the millisecond; one without an expiry never does', () => {
    const expiresAt = NOW + HOUR;
    const link = { sig: auditLinkSig(KEY, 'doc_1', 1, expiresAt), expiresAt };
    expect(checkAuditLink(KEY, 'doc_1', 1, link, expiresAt - 1)).toBe('valid');
    expect(checkAuditLink(KEY, 'doc_1', 1, link, expiresAt)).toBe('expired');
    expect(checkAuditLink(KEY, 'doc_1', 1, link, expiresAt + HOUR)).toBe('expired');
    // An expired link that is also forged reads as forged: nothing about the document is told.
    expect(checkAuditLink(KEY, 'doc_2', 1, link, expiresAt + 1)).toBe('forged');
    const forever = { sig: auditLinkSig(KEY, 'doc_1', 0) };
    expect(checkAuditLink(KEY, 'doc_1', 0, forever, Number.MAX_SAFE_INTEGER)).toBe('valid');
  });
});
