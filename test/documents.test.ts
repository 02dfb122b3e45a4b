// Documents and signers on both dialects: the walk-through with a real receiver subscribed to
// every event type, each webhook's audit_url opened without a token; refused steps that change
// nothing; the audit chain caught when a row is altered in the database (its rules as pure
// functions are in audit-chain.test.ts).
import { randomBytes } from 'node:crypto';
import { type RawBuilder, sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { auditLinkKey } from '../src/api/documents.js';
import { entryHashV1, GENESIS_HASH } from '../src/domain/audit-chain.js';
import { SUBSCRIBABLE_EVENT_TYPES } from '../src/domain/events.js';
import { SecretBox, settingSeal } from '../src/domain/secret-box.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import { headerOf, sleep } from './helpers/api-client.js';
import { DIALECTS, dialectLabel, sqliteDialect } from './helpers/databases.js';
import { expectError, expectFieldError } from './helpers/expect-error.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService } from './helpers/service.js';

/** A webhook's payload: the seed's shape, and the document's fields in data. */
interface Webhook {
  id: string;
  event: string;
  source?: string;
  data: Record<string, string | null> & { audit_url: string };
}

interface DocumentView {
  id: string;
  title: string;
  external_id: string | null;
  status: string;
  signers: { id: string; email: string; name: string | null; status: string }[];
  audit_url: string;
  events?: { id: string; event: string }[];
}

describe.each(DIALECTS)('documents on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService;
    let receiver: Receiver;
    beforeAll(async () => {
      service = await startTestService(dialect, { dispatcher: true });
      receiver = await startReceiver();
      const res = await json('POST', '/v1/webhooks/subscriptions', {
        target_url: `${receiver.url}/every`,
        // Every event type there is: the lifecycle's four document events, and the operational ones.
        event_types: [...SUBSCRIBABLE_EVENT_TYPES],
      });
      expect(res.statusCode, res.body).toBe(200);
    });
    afterAll(async () => {
      await service?.close();
      await receiver?.close();
    });

    function json(method: 'GET' | 'POST', url: string, body?: unknown, token?: string | null) {
      return service.request({
        method,
        url,
        ...(token === undefined ? {} : { token }),
        headers: {
          'user-agent': 'documents-test/1',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      });
    }

    async function created(body: Record<string, unknown>): Promise<DocumentView> {
      const res = await json('POST', '/v1/documents', body);
      expect(res.statusCode, res.body).toBe(201);
      return res.json();
    }

    async function step(path: string, body?: unknown): Promise<DocumentView> {
      const res = await json('POST', path, body);
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    }

    /** The audit_url opened as a receiver would: no token. */
    function openLink(url: string, accept = 'application/json') {
      const { pathname, search } = new URL(url);
      return service.request({ method: 'GET', url: `${pathname}${search}`, token: null, headers: { accept } });
    }

    const received = (documentId: string) =>
      receiver.requests
        .map((r) => ({ payload: JSON.parse(r.body) as Webhook, request: r }))
        .filter((r) => r.payload.data.document_id === documentId);

    async function snapshot(id: string) {
      const doc = (await json('GET', `/v1/documents/${id}`)).json();
      const events = (await json('GET', `/v1/events?document_id=${id}&limit=100`)).json().events;
      const trail = (await openLink(doc.audit_url)).json();
      return { doc, events, trail };
    }

    it('walks a document through create, send and two signatures: each step a webhook, each audit_url a chain that verifies', async () => {
      const doc = await created({
        title: 'Mutual NDA',
        external_id: 'crm-42',
        signers: [{ email: 'ana@example.com', name: 'Ana Lima' }, { email: 'bo@example.com' }],
      });
      expect(doc).toMatchObject({
        status: 'draft',
        title: 'Mutual NDA',
        external_id: 'crm-42',
        signers: [
          { email: 'ana@example.com', name: 'Ana Lima', status: 'pending' },
          { email: 'bo@example.com', name: null, status: 'pending' },
        ],
      });
      expect(doc.id).toMatch(/^doc_/);
      expect(doc.audit_url).toMatch(new RegExp(`/v1/documents/${doc.id}/audit\\?sig=[A-Za-z0-9_-]{43}$`));
      const [ana, bo] = doc.signers as [DocumentView['signers'][0], DocumentView['signers'][0]];

      const sent = await step(`/v1/documents/${doc.id}/send`);
      expect(sent.status).toBe('sent');
      expect(sent.events?.map((e) => e.event)).toEqual(['document.sent', 'document.sent']);
      await receiver.waitFor(2);
      await expect.poll(() => received(doc.id).length).toBe(2);
      expect(
        received(doc.id)
          .map((r) => [r.payload.event, r.payload.data.signer_email])
          .sort(),
      ).toEqual([
        ['document.sent', 'ana@example.com'],
        ['document.sent', 'bo@example.com'],
      ]);

      const first = await step(`/v1/documents/${doc.id}/signers/${ana.id}/sign`);
      expect(first.status).toBe('sent');
      expect(first.events?.map((e) => e.event)).toEqual(['document.signed']);
      await expect.poll(() => received(doc.id).length).toBe(3);

      const last = await step(`/v1/documents/${doc.id}/signers/${bo.id}/sign`);
      expect(last.status).toBe('completed');
      expect(last.events?.map((e) => e.event)).toEqual(['document.signed', 'document.completed']);
      await expect.poll(() => received(doc.id).length).toBe(5);

      const got = received(doc.id);
      const signed = got.filter((r) => r.payload.event === 'document.signed').map((r) => r.payload.data.signer_email);
      expect(signed.sort()).toEqual(['ana@example.com', 'bo@example.com']);
      const completed = got.find((r) => r.payload.event === 'document.completed');
      // document.completed comes after the signature that completed it (its event id is later).
      const lastSigned = got.find(
        (r) => r.payload.event === 'document.signed' && r.payload.data.signer_email === 'bo@example.com',
      );
      expect(String(completed?.payload.id) > String(lastSigned?.payload.id)).toBe(true);
      for (const { payload, request } of got) {
        // The seed's payload shape, plus the document's title and external_id; signed as usual.
        expect(payload.data).toMatchObject({
          document_id: doc.id,
          audit_url: doc.audit_url,
          title: 'Mutual NDA',
          external_id: 'crm-42',
        });
        expect(typeof payload.data.signer_email).toBe('string');
        // Marked as the lifecycle's own, in the signed body, which nothing published through the API carries.
        expect(payload.source).toBe('lifecycle');
        expect(headerOf(request, 'webhook-signature')).toMatch(/^v1,/);
        const trail = await openLink(payload.data.audit_url);
        expect(trail.statusCode, trail.body).toBe(200);
        expect(trail.json().verification).toEqual({ valid: true, entries: 5, first_broken: null });
      }
      // Whoever holds the link sees the signers' steps under their addresses and the platform's as
      // `platform`: no token id, no backend IP or user agent, no external_id.
      const link = await openLink(doc.audit_url);
      const trail = link.json();
      expect(trail.entries.map((e: { action: string; actor: string }) => [e.action, e.actor])).toEqual([
        ['created', 'platform'],
        ['sent', 'platform'],
        ['signed', 'ana@example.com'],
        ['signed', 'bo@example.com'],
        ['completed', 'bo@example.com'],
      ]);
      for (const entry of trail.entries) {
        expect(Object.keys(entry)).not.toContain('ip');
        expect(Object.keys(entry)).not.toContain('user_agent');
        expect(entry.hash).toMatch(/^[0-9a-f]{64}$/);
      }
      for (const hidden of ['tok_', '127.0.0.1', 'documents-test/1', 'crm-42']) expect(link.body).not.toContain(hidden);
      expect(trail.entries[0].prev_hash).toBe(GENESIS_HASH);
      expect(trail.entries[1].prev_hash).toBe(trail.entries[0].hash);
      // The account's own tokens read the whole trail.
      const full = (await json('GET', `/v1/documents/${doc.id}/audit/entries`)).json();
      expect(full).toMatchObject({ external_id: 'crm-42', verification: { valid: true, entries: 5 } });
      expect(full.entries.map((e: { actor: string }) => e.actor).slice(0, 2)).toEqual([
        expect.stringMatching(/^tok_/),
        expect.stringMatching(/^tok_/),
      ]);
      for (const entry of full.entries)
        expect(entry).toMatchObject({ ip: '127.0.0.1', user_agent: 'documents-test/1' });

      // A browser gets a page; a wrong signature or another document's gets nothing.
      const page = await openLink(doc.audit_url, 'text/html,application/xhtml+xml,*/*;q=0.8');
      expect(page.statusCode).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.headers['content-security-policy']).toContain("default-src 'none'");
      expect(page.body).toContain('The chain verifies: 5 entries');
      expect(page.body).toContain('Mutual NDA');
      expect(page.body).toContain('the platform');
      for (const hidden of ['tok_', '127.0.0.1', 'documents-test/1', 'crm-42']) expect(page.body).not.toContain(hidden);
      expectError(await openLink(`${doc.audit_url.slice(0, -2)}xx`), 403, 'forbidden');
      const other = await created({ title: 'Other', signers: [{ email: 'cy@example.com' }] });
      const foreign = new URL(doc.audit_url);
      foreign.pathname = `/v1/documents/${other.id}/audit`;
      expectError(await openLink(foreign.toString()), 403, 'forbidden');

      expect((await json('GET', `/v1/documents/${doc.id}/audit/verify`)).json()).toEqual({
        valid: true,
        entries: 5,
        first_broken: null,
      });
    });

    it('refuses a step the state does not allow with a 409 naming it, and changes nothing', async () => {
      const doc = await created({ title: 'Lease', signers: [{ email: 'a@example.com' }, { email: 'b@example.com' }] });
      const [a, b] = doc.signers as [DocumentView['signers'][0], DocumentView['signers'][0]];
      const refusals: [string, string, unknown?][] = [];
      const refuse = async (path: string, fragment: string, body?: unknown) => {
        const before = await snapshot(doc.id);
        const error = expectError(await json('POST', path, body), 409, 'conflict');
        expect(error.message).toContain(fragment);
        const after = await snapshot(doc.id);
        expect(after).toEqual(before);
        refusals.push([path, fragment, body]);
      };
      await refuse(`/v1/documents/${doc.id}/signers/${a.id}/sign`, 'the document is draft');
      await step(`/v1/documents/${doc.id}/send`);
      await refuse(`/v1/documents/${doc.id}/send`, 'the document is sent');
      await step(`/v1/documents/${doc.id}/signers/${a.id}/sign`);
      await refuse(`/v1/documents/${doc.id}/signers/${a.id}/sign`, `signer ${a.id} has signed already`);
      await refuse(`/v1/documents/${doc.id}/signers/${a.id}/decline`, `signer ${a.id} has signed already`, {
        reason: 'changed my mind',
      });
      const declined = await step(`/v1/documents/${doc.id}/signers/${b.id}/decline`, { reason: 'wrong address' });
      expect(declined).toMatchObject({ status: 'declined', events: [{ event: 'document.declined' }] });
      expect(declined.signers[1]).toMatchObject({ status: 'declined', decline_reason: 'wrong address' });
      await refuse(`/v1/documents/${doc.id}/signers/${b.id}/sign`, 'the document is declined');
      await refuse(`/v1/documents/${doc.id}/send`, 'the document is declined');
      expect(refusals).toHaveLength(6);
      const events = (await snapshot(doc.id)).events.map((e: { event: string }) => e.event).sort();
      expect(events).toEqual(['document.declined', 'document.sent', 'document.sent', 'document.signed']);
      await expect
        .poll(() => received(doc.id).find((r) => r.payload.event === 'document.declined')?.payload.data.reason)
        .toBe('wrong address');
    });

    it('answers 400, 403 and 404 as any route does, and creates nothing', async () => {
      const reader = await service.tokenFor(`reader-${randomBytes(4).toString('hex')}`, { scopes: ['read'] });
      const before = (await json('GET', '/v1/documents?limit=100')).json().documents.length;
      for (const [body, field] of [
        [{ title: 'x', signers: [] }, 'signers'],
        [{ title: '', signers: [{ email: 'a@example.com' }] }, 'title'],
        [{ title: 'x', signers: [{ email: 'not an address' }] }, 'signers/0/email'],
        [{ title: 'x', signers: [{ email: 'a@example.com' }, { email: 'A@example.com' }] }, 'signers[1].email'],
        [{ title: 'x', signers: [{ email: 'a@example.com' }], owner: 'me' }, 'owner'],
      ] as const) {
        const res = await json('POST', '/v1/documents', body);
        expect(res.statusCode, JSON.stringify(body)).toBe(400);
        expect(res.json().error.message.replace(/\./g, '/')).toContain(field.replace(/\./g, '/').split('/')[0]);
      }
      expectFieldError(await json('POST', '/v1/documents/doc_x/signers/sgn_y/decline', {}), 'reason');
      expectError(
        await json('POST', '/v1/documents', { title: 'x', signers: [{ email: 'a@example.com' }] }, reader.token),
        403,
        'forbidden',
      );
      expectError(await json('POST', '/v1/documents/doc_01ARZ3NDEKTSV4RRFFQ69G5FAV/send'), 404, 'not_found');
      const doc = await created({ title: 'Known', signers: [{ email: 'a@example.com' }] });
      await step(`/v1/documents/${doc.id}/send`);
      expectError(
        await json('POST', `/v1/documents/${doc.id}/signers/sgn_01ARZ3NDEKTSV4RRFFQ69G5FAV/sign`),
        404,
        'not_found',
      );
      // Another account sees none of it.
      const outsider = await service.tokenFor(`outsider-${randomBytes(4).toString('hex')}`);
      expectError(await json('GET', `/v1/documents/${doc.id}`, undefined, outsider.token), 404, 'not_found');
      expectError(await json('POST', `/v1/documents/${doc.id}/send`, undefined, outsider.token), 404, 'not_found');
      expect((await json('GET', '/v1/documents?limit=100', undefined, outsider.token)).json().documents).toEqual([]);
      expect((await json('GET', '/v1/documents?limit=100')).json().documents.length).toBe(before + 1);
    });

    it('lists documents newest first, with a status filter and a cursor', async () => {
      const account = await service.tokenFor(`lister-${randomBytes(4).toString('hex')}`);
      const make = async (title: string) => {
        const res = await json(
          'POST',
          '/v1/documents',
          { title, signers: [{ email: 'a@example.com' }] },
          account.token,
        );
        return res.json() as DocumentView;
      };
      const one = await make('one');
      const two = await make('two');
      const three = await make('three');
      expect((await json('POST', `/v1/documents/${two.id}/send`, undefined, account.token)).statusCode).toBe(200);
      const page1 = (await json('GET', '/v1/documents?limit=2', undefined, account.token)).json();
      expect(page1.documents.map((d: DocumentView) => d.id)).toEqual([three.id, two.id]);
      const page2 = (
        await json('GET', `/v1/documents?limit=2&cursor=${page1.next_cursor}`, undefined, account.token)
      ).json();
      expect(page2).toEqual({ documents: [expect.objectContaining({ id: one.id })], next_cursor: null });
      const sent = (await json('GET', '/v1/documents?status=sent', undefined, account.token)).json();
      expect(sent.documents.map((d: DocumentView) => d.id)).toEqual([two.id]);
      expectFieldError(await json('GET', '/v1/documents?status=lost', undefined, account.token), 'status');
    });

    it('signs links with one key per database, which a master-key rotation keeps', async () => {
      const database = await dialect.create();
      const store = await openStore(openDialect(parseDatabaseUrl(database.url)));
      try {
        const before = new SecretBox(randomBytes(32));
        const key = await auditLinkKey(store, before);
        expect(key).toHaveLength(32);
        expect(await auditLinkKey(store, before)).toEqual(key);
        const after = new SecretBox(randomBytes(32));
        await store.resealSecrets((sealed, context) => after.seal(before.open(sealed, context), context));
        expect(await auditLinkKey(store, after)).toEqual(key);
        const resealed = (await store.getSetting('audit_link_key')) as string;
        expect(() => before.open(resealed, settingSeal('audit_link_key'))).toThrow();
        expect(after.open(resealed, settingSeal('audit_link_key'))).toHaveLength(44);
        // Another database has a key of its own.
        const other = await dialect.create();
        const otherStore = await openStore(openDialect(parseDatabaseUrl(other.url)));
        try {
          expect(await auditLinkKey(otherStore, after)).not.toEqual(key);
        } finally {
          await otherStore.close();
          await other.drop();
        }
      } finally {
        await store.close();
        await database.drop();
      }
    });

    it('refuses an event published through the API for a lifecycle document, alone or in a batch, and stores none of it', async () => {
      const doc = await created({ title: 'Declined deal', signers: [{ email: 'a@example.com' }] });
      await step(`/v1/documents/${doc.id}/send`);
      await step(`/v1/documents/${doc.id}/signers/${doc.signers[0]?.id}/decline`, { reason: 'no' });
      const before = (await json('GET', `/v1/events?document_id=${doc.id}&limit=100`)).json().events as unknown[];
      const forged = {
        event: 'document.completed',
        data: { document_id: doc.id, signer_email: 'a@example.com', audit_url: doc.audit_url },
      };
      const alone = await json('POST', '/v1/events', forged);
      expectError(alone, 409, 'conflict');
      expect(alone.json().error.message).toBe(
        `data.document_id: ${doc.id} is a document of the documents lifecycle (POST /v1/documents), which publishes its events itself`,
      );
      const other = { ...forged, data: { ...forged.data, document_id: 'doc_from_the_platform' } };
      const batch = await json('POST', '/v1/events/batch', { events: [other, forged] });
      expectError(batch, 409, 'conflict');
      expect(batch.json().error.message).toContain('events[1].data.document_id');
      const after = (await json('GET', `/v1/events?document_id=${doc.id}&limit=100`)).json().events;
      expect(after).toHaveLength(before.length);
      expect((await json('GET', '/v1/events?document_id=doc_from_the_platform')).json().events).toEqual([]);
      // Lifecycle events say where they came from; one the API was given for another document does not.
      expect(after.every((e: { source?: string }) => e.source === 'lifecycle')).toBe(true);
      const accepted = await json('POST', '/v1/events', other);
      expect(accepted.statusCode, accepted.body).toBe(202);
      const listed = (await json('GET', `/v1/events/${accepted.json().id}`)).json();
      expect(listed.source).toBeUndefined();
    });

    it('catches a trail rewritten in the database without the chain key, and a status changed beside it', async () => {
      const doc = await created({ title: 'Declined deal', signers: [{ email: 'a@example.com' }] });
      await step(`/v1/documents/${doc.id}/send`);
      await step(`/v1/documents/${doc.id}/signers/${doc.signers[0]?.id}/decline`, { reason: 'no' });
      const verify = async () => (await json('GET', `/v1/documents/${doc.id}/audit/verify`)).json();
      expect(await verify()).toEqual({ valid: true, entries: 3, first_broken: null });

      const raw = openDialect(parseDatabaseUrl(service.database.url));
      try {
        // The status alone, as a careless or dishonest edit would: the trail says declined.
        await sql`update documents set status = 'completed' where id = ${doc.id}`.execute(raw.db);
        expect(await verify()).toEqual({ valid: false, entries: 3, first_broken: { seq: 3, reason: 'status' } });

        // Then the whole trail, as someone with write access and the hashing code but no key would:
        // the decline turned into a signature and a completion, every hash and the head recomputed.
        const rows = (
          await sql<{ seq: number; at: number | string; personal: string }>`
            select seq, at, personal from audit_entries where document_id = ${doc.id} order by seq`.execute(raw.db)
        ).rows;
        const actions = ['created', 'sent', 'completed'] as const;
        let prev = GENESIS_HASH;
        for (const [i, row] of rows.entries()) {
          const entry = { seq: row.seq, at: Number(row.at), action: actions[i] as string, personal: row.personal };
          const hash = entryHashV1(prev, entry as never);
          await sql`update audit_entries set action = ${entry.action}, prev_hash = ${prev}, hash = ${hash}, hash_version = 1
            where document_id = ${doc.id} and seq = ${row.seq}`.execute(raw.db);
          prev = hash;
        }
        await sql`update documents set audit_hash = ${prev} where id = ${doc.id}`.execute(raw.db);
        expect(await verify()).toEqual({ valid: false, entries: 3, first_broken: { seq: 1, reason: 'version' } });
        // Claiming the keyed version instead: the hashes are not the key's.
        await sql`update audit_entries set hash_version = 2 where document_id = ${doc.id}`.execute(raw.db);
        expect(await verify()).toEqual({ valid: false, entries: 3, first_broken: { seq: 1, reason: 'hash' } });
      } finally {
        await raw.close();
      }
    });

    it('revokes every audit link given out so far: they answer 403, a new one opens and later events carry it', async () => {
      const doc = await created({ title: 'Revocable', signers: [{ email: 'a@example.com' }] });
      expect((await openLink(doc.audit_url)).statusCode).toBe(200);
      // The same document, read again, gives the same link while nothing was revoked.
      expect((await json('GET', `/v1/documents/${doc.id}`)).json().audit_url).toBe(doc.audit_url);
      const globex = await service.tokenFor('globex');
      expectError(
        await json('POST', `/v1/documents/${doc.id}/audit-link/revoke`, undefined, globex.token),
        404,
        'not_found',
      );
      expect((await openLink(doc.audit_url)).statusCode).toBe(200);

      const revoked = await step(`/v1/documents/${doc.id}/audit-link/revoke`);
      expect(revoked.audit_url).not.toBe(doc.audit_url);
      expectError(await openLink(doc.audit_url), 403, 'forbidden');
      expect((await openLink(revoked.audit_url)).statusCode).toBe(200);
      const sent = await step(`/v1/documents/${doc.id}/send`);
      expect(sent.audit_url).toBe(revoked.audit_url);
      const events = (await json('GET', `/v1/events?document_id=${doc.id}`)).json().events as {
        data: { audit_url: string };
      }[];
      expect(events.map((e) => e.data.audit_url)).toEqual([revoked.audit_url]);
      // Revoked again: the second link goes the way of the first.
      const again = await step(`/v1/documents/${doc.id}/audit-link/revoke`);
      expectError(await openLink(revoked.audit_url), 403, 'forbidden');
      expect((await openLink(again.audit_url)).statusCode).toBe(200);
    });

    it('catches a row altered in the database, and entries removed from the end', async () => {
      const doc = await created({ title: 'Tamper', signers: [{ email: 'a@example.com' }, { email: 'b@example.com' }] });
      await step(`/v1/documents/${doc.id}/send`);
      await step(`/v1/documents/${doc.id}/signers/${doc.signers[0]?.id}/sign`);
      const verify = async () => (await json('GET', `/v1/documents/${doc.id}/audit/verify`)).json();
      expect(await verify()).toEqual({ valid: true, entries: 3, first_broken: null });

      // Straight into the database, as someone with access to it would.
      const raw = openDialect(parseDatabaseUrl(service.database.url));
      try {
        await sql`update audit_entries set actor = ${'mallory@example.com'} where document_id = ${doc.id} and seq = 2`.execute(
          raw.db,
        );
        expect(await verify()).toEqual({ valid: false, entries: 3, first_broken: { seq: 2, reason: 'hash' } });
        const trail = (await openLink(doc.audit_url)).json();
        expect(trail.verification).toEqual({ valid: false, entries: 3, first_broken: { seq: 2, reason: 'hash' } });
        const page = await openLink(doc.audit_url, 'text/html');
        expect(page.body).toContain('The chain is broken at entry 2 (hash).');

        await sql`update audit_entries set actor = ${'tok_restored'} where document_id = ${doc.id} and seq = 2`.execute(
          raw.db,
        );
        // The real actor was the token: restoring another value still fails, at the same entry.
        expect((await verify()).first_broken).toEqual({ seq: 2, reason: 'hash' });

        const doc2 = await created({ title: 'Cut', signers: [{ email: 'a@example.com' }] });
        await step(`/v1/documents/${doc2.id}/send`);
        await sql`delete from audit_entries where document_id = ${doc2.id} and seq = 2`.execute(raw.db);
        expect((await json('GET', `/v1/documents/${doc2.id}/audit/verify`)).json()).toEqual({
          valid: false,
          entries: 1,
          first_broken: { seq: 2, reason: 'head' },
        });
      } finally {
        await raw.close();
      }
    });

    it('breaks the chain at the entry expected for every column of the trail and of its head changed in the database', async () => {
      // Each document's trail: created, sent, signed (the entry changed), declined. The middle entry
      // has an actor, IP, user agent and detail of its own, and a neighbour on either side.
      const MIDDLE = 3;
      const entry = (set: RawBuilder<unknown>) => (id: string) =>
        sql`update audit_entries set ${set} where document_id = ${id} and seq = ${MIDDLE}`;
      const head = (set: RawBuilder<unknown>) => (id: string) => sql`update documents set ${set} where id = ${id}`;
      /** The verdict expected: the first broken entry and why (and the entries left, 4 unless said). */
      const broken = (seq: number, reason: string, entries = 4) => ({
        valid: false,
        entries,
        first_broken: { seq, reason },
      });
      type Case = [
        column: string,
        change: (documentId: string) => RawBuilder<unknown>,
        verdict: ReturnType<typeof broken>,
      ];
      const live: Case[] = [
        // Moved to another document or renumbered: a gap, named at the entry after it. The hash
        // covers seq as well, but the sequence check catches any one renumbered row first; the
        // fixed vector in 'hashes an entry exactly so' pins seq in the hash.
        ['document_id', entry(sql`document_id = ${'doc_elsewhere'}`), broken(4, 'sequence', 3)],
        ['seq', entry(sql`seq = 13`), broken(4, 'sequence')],
        ['at', entry(sql`at = at + 1`), broken(MIDDLE, 'hash')],
        ['action', entry(sql`action = 'declined'`), broken(MIDDLE, 'hash')],
        // The personal fields answer to the commitment under the salt.
        ['actor', entry(sql`actor = 'mallory@example.com'`), broken(MIDDLE, 'hash')],
        ['ip', entry(sql`ip = '203.0.113.9'`), broken(MIDDLE, 'hash')],
        ['user_agent', entry(sql`user_agent = 'forged/1'`), broken(MIDDLE, 'hash')],
        ['detail', entry(sql`detail = ${'{"signer_id":"sgn_forged"}'}`), broken(MIDDLE, 'hash')],
        ['salt', entry(sql`salt = ${'ab'.repeat(16)}`), broken(MIDDLE, 'hash')],
        ['personal', entry(sql`personal = ${'0'.repeat(64)}`), broken(MIDDLE, 'hash')],
        ['prev_hash', entry(sql`prev_hash = ${'0'.repeat(64)}`), broken(MIDDLE, 'prev_hash')],
        ['hash', entry(sql`hash = ${'f'.repeat(64)}`), broken(MIDDLE, 'hash')],
        // Back to the unkeyed version after the key existed, to the keyed one without the
        // document after an entry with it, or to a version there is none of.
        ['hash_version 1', entry(sql`hash_version = 1`), broken(MIDDLE, 'version')],
        ['hash_version 2', entry(sql`hash_version = 2`), broken(MIDDLE, 'version')],
        ['hash_version 4', entry(sql`hash_version = 4`), broken(MIDDLE, 'version')],
        // The document row's head: the trail must end there, and bear out its status and title.
        ['documents.audit_seq', head(sql`audit_seq = audit_seq - 1`), broken(5, 'head')],
        [
          'documents.audit_hash',
          (id) =>
            head(sql`audit_hash = (select hash from audit_entries where document_id = ${id} and seq = ${MIDDLE})`)(id),
          broken(5, 'head'),
        ],
        ['documents.status', head(sql`status = 'completed'`), broken(4, 'status')],
        ['documents.title', head(sql`title = 'Another title'`), broken(1, 'title')],
      ];
      // Erased (POST /v1/erasure), the middle entry has no salt to check its fields against: its
      // commitment answers to the chain alone, and any personal field written back does not hold.
      const erased: Case[] = [
        ['personal', entry(sql`personal = ${'0'.repeat(64)}`), broken(MIDDLE, 'hash')],
        ['actor', entry(sql`actor = 'mallory@example.com'`), broken(MIDDLE, 'hash')],
        ['ip', entry(sql`ip = '203.0.113.9'`), broken(MIDDLE, 'hash')],
        ['user_agent', entry(sql`user_agent = 'forged/1'`), broken(MIDDLE, 'hash')],
        ['detail', entry(sql`detail = ${'{"reason":"forged"}'}`), broken(MIDDLE, 'hash')],
        ['salt', entry(sql`salt = ${'ab'.repeat(16)}`), broken(MIDDLE, 'hash')],
      ];

      const raw = openDialect(parseDatabaseUrl(service.database.url));
      const got: Record<string, unknown> = {};
      const expected: Record<string, unknown> = {};
      try {
        for (const [name, change, verdict, erase] of [
          ...live.map((c) => [...c, false] as const),
          ...erased.map(([column, ...rest]) => [`${column}, erased`, ...rest, true] as const),
        ]) {
          const n = randomBytes(4).toString('hex');
          const [a, b] = [`a-${n}@example.com`, `b-${n}@example.com`];
          const doc = await created({ title: 'Tampered', signers: [{ email: a }, { email: b }] });
          await step(`/v1/documents/${doc.id}/send`);
          await step(`/v1/documents/${doc.id}/signers/${doc.signers[0]?.id}/sign`);
          await step(`/v1/documents/${doc.id}/signers/${doc.signers[1]?.id}/decline`, { reason: 'wrong address' });
          if (erase) {
            const res = await json('POST', '/v1/erasure', { signer_email: a });
            expect(res.statusCode, res.body).toBe(200);
          }
          const verify = async () => (await json('GET', `/v1/documents/${doc.id}/audit/verify`)).json();
          // Before the change: the chain verifies, and the middle entry holds what it should.
          expect(await verify(), name).toEqual({ valid: true, entries: 4, first_broken: null });
          const before = (await json('GET', `/v1/documents/${doc.id}/audit/entries`)).json().entries;
          expect(before[MIDDLE - 1], name).toMatchObject(
            erase
              ? { action: 'signed', actor: null, ip: null, user_agent: null, detail: null, salt: null }
              : {
                  action: 'signed',
                  actor: a,
                  ip: '127.0.0.1',
                  user_agent: 'documents-test/1',
                  detail: { signer_id: doc.signers[0]?.id },
                  salt: expect.stringMatching(/^[0-9a-f]{32}$/),
                },
          );

          const result = await change(doc.id).execute(raw.db);
          expect(Number(result.numAffectedRows), name).toBe(1);
          expected[name] = verdict;
          got[name] = await verify();
          // Whoever holds the audit link sees the same.
          expect((await openLink(doc.audit_url)).json().verification, name).toEqual(got[name]);
        }
      } finally {
        await raw.close();
      }
      // All at once, so that a failure names every column that is not caught as expected.
      expect(got).toEqual(expected);
    });

    it('catches a whole trail moved, head and all, onto another document', async () => {
      const make = async () => {
        const doc = await created({ title: 'Moved', signers: [{ email: 'a@example.com' }] });
        await step(`/v1/documents/${doc.id}/send`);
        return doc;
      };
      const [from, onto] = [await make(), await make()];
      await step(`/v1/documents/${from.id}/signers/${from.signers[0]?.id}/sign`);
      const verify = async (id: string) => (await json('GET', `/v1/documents/${id}/audit/verify`)).json();
      expect(await verify(from.id)).toEqual({ valid: true, entries: 4, first_broken: null });
      const raw = openDialect(parseDatabaseUrl(service.database.url));
      try {
        // What someone with write access to the database could do: put the signed trail of one
        // document, its head, status and title in place of another's. Each entry's hash names
        // its document, so the moved trail breaks at its first entry.
        await sql`delete from audit_entries where document_id = ${onto.id}`.execute(raw.db);
        await sql`update audit_entries set document_id = ${onto.id} where document_id = ${from.id}`.execute(raw.db);
        await sql`update documents set
          audit_seq = (select audit_seq from documents where id = ${from.id}),
          audit_hash = (select audit_hash from documents where id = ${from.id}),
          status = (select status from documents where id = ${from.id})
          where id = ${onto.id}`.execute(raw.db);
        expect(await verify(onto.id)).toEqual({ valid: false, entries: 4, first_broken: { seq: 1, reason: 'hash' } });
      } finally {
        await raw.close();
      }
    });
  });
});

describe('audit links that expire (COUNTERSIGN_AUDIT_LINK_TTL)', () => {
  let service: TestService | undefined;
  afterEach(async () => {
    await service?.close();
    service = undefined;
  });

  const open = (s: TestService, url: string) => {
    const { pathname, search } = new URL(url);
    return s.request({ method: 'GET', url: `${pathname}${search}`, token: null });
  };

  it('signs the expiry into the link: open until then, a 403 that says so after, and no way to extend it', async () => {
    service = await startTestService(sqliteDialect, { auditLinkTtlMs: 3_600_000 });
    const made = await service.request({
      method: 'POST',
      url: '/v1/documents',
      payload: { title: 'Expiring', signers: [{ email: 'a@example.com' }] },
    });
    const doc = made.json() as { id: string; audit_url: string };
    const exp = Number(new URL(doc.audit_url).searchParams.get('exp'));
    expect(exp).toBeGreaterThan(Date.now() + 3_500_000);
    expect(exp).toBeLessThanOrEqual(Date.now() + 3_600_000);
    expect((await open(service, doc.audit_url)).statusCode).toBe(200);
    // A later expiry written into the link breaks its signature.
    const stretched = new URL(doc.audit_url);
    stretched.searchParams.set('exp', String(exp + 86_400_000));
    expectError(await open(service, stretched.toString()), 403, 'forbidden');
    await service.close();

    // Links that last 1.5 s: the same link opens until its expiry and is refused from then on, in
    // words that say so. The server reads this process's clock.
    service = await startTestService(sqliteDialect, { auditLinkTtlMs: 1_500 });
    const short = (
      await service.request({
        method: 'POST',
        url: '/v1/documents',
        payload: { title: 'Brief', signers: [{ email: 'b@example.com' }] },
      })
    ).json() as { audit_url: string };
    const shortExp = Number(new URL(short.audit_url).searchParams.get('exp'));
    expect(shortExp).toBeGreaterThan(Date.now());
    const opened = await open(service, short.audit_url);
    expect(opened.statusCode, opened.body).toBe(200);
    expect(opened.json().verification).toEqual({ valid: true, entries: 1, first_broken: null });
    while (Date.now() < shortExp) await sleep(shortExp - Date.now());
    const expired = await open(service, short.audit_url);
    expectError(expired, 403, 'forbidden');
    expect(expired.json().error.message).toBe('this audit link has expired: ask the sender for a new one');
  });
});
