// The audit chain's rules as pure functions (src/domain/audit-chain.ts): the fixed test vector,
// verification and where it breaks, the key, the versions, erasure, status and title. The same
// rules against rows changed in a real database are in documents.test.ts.
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type AuditEntry,
  canonicalJson,
  chainEntry,
  entryHashKeyed,
  entryHashV1,
  erasedEntry,
  GENESIS_HASH,
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
});
