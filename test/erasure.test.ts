// Erasure (POST /v1/erasure): what it matches, as plain values; what it changes in the store, on
// both dialects, driven through `now`; and, through a real service with a real receiver that
// echoes what it gets, that afterwards neither the raw SQLite files (database, -wal, -shm) nor a
// pg_dump of the PostgreSQL database holds any trace of the address or document.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { jsonHolds, likePattern, subjectMatcher } from '../src/domain/erasure.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import type { ClaimedDelivery, PublishRequest, Store } from '../src/store/store.js';
import { apiOf, type DeliveryView, eventually } from './helpers/api-client.js';
import {
  DIALECTS,
  type DialectUnderTest,
  dialectLabel,
  sqliteDialect,
  type TestDatabase,
} from './helpers/databases.js';
import { expectError } from './helpers/expect-error.js';
import { gate, type Receiver, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService } from './helpers/service.js';
import { HOUR, LEASE_MS, result, SECOND, SETTINGS, subscriptionRow, T0 } from './helpers/store-fixtures.js';

const run = promisify(execFile);
const ERASE = 'erase.me@example.com';
const KEEP = 'keep.me@example.com';
const OWNER = 'test-dispatcher';

describe('what an erasure matches', () => {
  it('finds an address whole, in any letter case, in any string value of the data, never inside a longer one or in a key', () => {
    const matcher = subjectMatcher({ signerEmail: 'Erase.Me@Example.com' });
    expect(jsonHolds(`{"signer_email":"${ERASE}"}`, matcher)).toBe(true);
    expect(jsonHolds(`{"cc":["x@example.org",{"to":"Ana <${ERASE.toUpperCase()}>"}]}`, matcher)).toBe(true);
    expect(jsonHolds(`{"note":"write to ${ERASE}."}`, matcher)).toBe(true);
    expect(jsonHolds(`{"signer_email":"joana.${ERASE}"}`, matcher)).toBe(false);
    expect(jsonHolds(`{"signer_email":"${ERASE}.au"}`, matcher)).toBe(false);
    expect(jsonHolds(`{"signer_email":"x${ERASE}"}`, matcher)).toBe(false);
    expect(jsonHolds(`{"${ERASE}":"a key, not a value"}`, matcher)).toBe(false);
    expect(jsonHolds(`{"pages":3,"signed":true,"signer_email":"${KEEP}"}`, matcher)).toBe(false);
  });

  it('finds a document id as a token of any text', () => {
    const matcher = subjectMatcher({ documentId: 'doc_42' });
    expect(matcher.test('{"data":{"document_id":"doc_42"}}')).toBe(true);
    expect(matcher.test('see https://sign.example.com/audit/DOC_42?x=1')).toBe(true);
    expect(matcher.test('{"document_id":"doc_421"}')).toBe(false);
    expect(matcher.test('{"document_id":"xdoc_42"}')).toBe(false);
  });

  it('prefilters with a LIKE pattern that escapes LIKE wildcards and keeps to what JSON and lower() leave as is', () => {
    expect(likePattern({ signerEmail: 'A_b%c@Example.com' })).toBe('%a\\_b\\%c@example.com%');
    // A quote is escaped in JSON text and ö is not lowered by SQLite: the longest plain run is used.
    expect(likePattern({ signerEmail: 'Zoë"quote@example.com' })).toBe('%quote@example.com%');
    expect(likePattern({ documentId: 'doc_1' })).toBe('%doc\\_1%');
  });
});

function request(accountId: string, type: string, signer: string, documentId = 'doc_1', now = T0): PublishRequest {
  return {
    accountId,
    type,
    dataJson: JSON.stringify({
      document_id: documentId,
      signer_email: signer,
      audit_url: 'https://sign.example.com/a',
    }),
    occurredAt: now,
    documentId,
  };
}

async function publishOne(store: Store, req: PublishRequest, now: number): Promise<string> {
  const [published] = await store.publishEvents([req], now);
  if (!published?.ok) throw new Error('publish refused');
  return published.event.id;
}

describe.each(DIALECTS)('erasure in the store on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let database: TestDatabase | undefined;
    let store: Store | undefined;
    afterEach(async () => {
      await store?.close();
      await database?.drop();
      store = undefined;
      database = undefined;
    });

    it('erases the matching events, cancels what they have not delivered, frees their document, and scrubs any echo in the account', async () => {
      database = await dialect.create();
      // Every erasure rebuilds the file at once (the interval is a test of its own, below).
      const s = await openStore(openDialect(parseDatabaseUrl(database.url)), { fileRebuildEveryMs: 1 });
      store = s;
      const acme = (await s.ensureAccount('acme', T0)).id;
      const globex = (await s.ensureAccount('globex', T0)).id;
      const signed = subscriptionRow(acme, { target_url: 'https://a.example.com/signed' });
      const paused = subscriptionRow(acme, { target_url: 'https://a.example.com/paused', status: 'paused' });
      const ordered = subscriptionRow(acme, {
        target_url: 'https://a.example.com/ordered',
        event_types: 'document.sent',
        ordering: 'document',
      });
      const other = subscriptionRow(globex, { target_url: 'https://g.example.com/signed' });
      for (const sub of [signed, paused, ordered, other]) await s.createSubscription(sub);

      // An event about someone else, whose receiver's answer happened to mention the address.
      const kept = await publishOne(s, request(acme, 'document.signed', KEEP), T0);
      let claimed = await s.claimDueDeliveries(OWNER, 10, T0, LEASE_MS);
      expect(claimed.map((c) => c.eventId)).toEqual([kept]);
      await s.recordAttempts(
        OWNER,
        claimed.map((c) =>
          result(c, 'delivered', T0, {
            responseExcerpt: `ok, and cc ${ERASE.toUpperCase()} too`,
            responseHeaders: JSON.stringify({ 'x-signer': KEEP }),
          }),
        ),
        T0,
        SETTINGS,
      );
      // doc_z, ordered: the first is being sent, the second (same signer) and third (another) wait.
      const at1 = T0 + SECOND;
      const inFlight = await publishOne(s, request(acme, 'document.sent', ERASE, 'doc_z', at1), at1);
      const waiting = await publishOne(s, request(acme, 'document.sent', ERASE, 'doc_z', at1), at1);
      const next = await publishOne(s, request(acme, 'document.sent', KEEP, 'doc_z', at1), at1);
      claimed = await s.claimDueDeliveries(OWNER, 10, at1, LEASE_MS);
      expect(claimed.map((c) => c.eventId)).toEqual([inFlight]);
      const sending = claimed[0] as ClaimedDelivery;
      // Pending to one subscription, held by the paused one; and the same address in another account.
      const at2 = T0 + 2 * SECOND;
      const pending = await publishOne(s, request(acme, 'document.signed', 'Erase.Me@Example.COM'), at2);
      const elsewhere = await publishOne(s, request(globex, 'document.signed', ERASE), at2);

      const first = await s.eraseSubject(acme, { signerEmail: 'ERASE.me@example.com' }, T0 + 3 * SECOND, {
        inFlightWaitMs: 300,
      });
      expect(first).toEqual({
        eventsErased: 3,
        deliveriesCancelled: 4,
        attemptsScrubbed: 1,
        documentsScrubbed: 0,
        complete: false,
        warnings: [
          '1 cancelled delivery was being sent and has not logged its answer yet; erase again later to scrub it',
        ],
      });
      for (const id of [inFlight, waiting, pending]) {
        const event = await s.getEvent(acme, id);
        expect(event?.dataJson, id).toBe('{"erased":true}');
        expect(event?.documentId).toBeNull();
        expect(event?.type).toMatch(/^document\./);
      }
      expect(JSON.parse((await s.getEvent(acme, kept))?.dataJson ?? '').signer_email).toBe(KEEP);
      expect((await s.getEvent(acme, next))?.documentId).toBe('doc_z');
      expect(JSON.parse((await s.getEvent(globex, elsewhere))?.dataJson ?? '').signer_email).toBe(ERASE);

      const statusOf = async (accountId: string, eventId: string) =>
        (await s.listDeliveries(accountId, { limit: 10, eventId })).items.map((d) => [d.status, d.order_key]);
      expect(await statusOf(acme, inFlight)).toEqual([['cancelled', null]]);
      expect(await statusOf(acme, waiting)).toEqual([['cancelled', null]]);
      expect((await statusOf(acme, pending)).sort()).toEqual([
        ['cancelled', null],
        ['cancelled', null],
      ]);
      // The next delivery of doc_z is free to go.
      expect(await statusOf(acme, next)).toEqual([['pending', 'doc_z']]);
      expect(await statusOf(globex, elsewhere)).toEqual([['pending', null]]);
      const keptAttempts = await s.listAttempts(
        (await s.listDeliveries(acme, { limit: 10, eventId: kept })).items.map((d) => d.id),
      );
      expect(keptAttempts.map((a) => [a.response_excerpt, a.response_headers])).toEqual([
        [null, JSON.stringify({ 'x-signer': KEEP })],
      ]);

      // The send in flight answers late, echoing what it sent: logged, yet its delivery stays cancelled.
      await s.recordAttempts(
        OWNER,
        [result(sending, 'delivered', T0 + 4 * SECOND, { responseExcerpt: `{"signer_email":"${ERASE}"}` })],
        T0 + 4 * SECOND,
        SETTINGS,
      );
      expect(await statusOf(acme, inFlight)).toEqual([['cancelled', null]]);
      // Erasing again scrubs that answer; nothing is counted twice.
      const second = await s.eraseSubject(acme, { signerEmail: ERASE }, T0 + 5 * SECOND, { inFlightWaitMs: 300 });
      expect(second).toEqual({
        eventsErased: 0,
        deliveriesCancelled: 0,
        attemptsScrubbed: 1,
        documentsScrubbed: 0,
        complete: true,
        warnings: [],
      });
      expect((await s.listAttempts([sending.id])).map((a) => a.response_excerpt)).toEqual([null]);

      // By document: the last event of doc_z.
      expect(await s.eraseSubject(acme, { documentId: 'doc_z' }, T0 + 6 * SECOND)).toEqual({
        eventsErased: 1,
        deliveriesCancelled: 1,
        attemptsScrubbed: 0,
        documentsScrubbed: 0,
        complete: true,
        warnings: [],
      });
      expect(await statusOf(acme, next)).toEqual([['cancelled', null]]);
      expect((await s.listEvents(acme, { limit: 10, documentId: 'doc_z' })).items).toEqual([]);
    });

    it('never sends an erased event again: recover skips it and a delivery of it is refused', async () => {
      database = await dialect.create();
      // Every erasure rebuilds the file at once (the interval is a test of its own, below).
      const s = await openStore(openDialect(parseDatabaseUrl(database.url)), { fileRebuildEveryMs: 1 });
      store = s;
      const acme = (await s.ensureAccount('acme', T0)).id;
      const late = subscriptionRow(acme, { target_url: 'https://a.example.com/late', created_at: T0 - SECOND });
      const erased = await publishOne(
        s,
        {
          accountId: acme,
          type: 'document.signed',
          dataJson: JSON.stringify(data(ERASE, 'doc_e')),
          documentId: 'doc_e',
          occurredAt: T0,
        },
        T0,
      );
      const kept = await publishOne(
        s,
        {
          accountId: acme,
          type: 'document.signed',
          dataJson: JSON.stringify(data(KEEP, 'doc_k')),
          documentId: 'doc_k',
          occurredAt: T0,
        },
        T0,
      );
      expect((await s.eraseSubject(acme, { signerEmail: ERASE }, T0 + 1)).eventsErased).toBe(1);
      // The subscription came after neither event had a delivery to it: recover makes one for the kept event only.
      await s.createSubscription(late);
      expect(await s.recoverMissed(acme, late.id, T0 - HOUR, T0 + HOUR, T0 + 2, 100)).toEqual({
        recovered: 1,
        continueFrom: undefined,
      });
      const made = (await s.listDeliveries(acme, { limit: 10, subscriptionId: late.id })).items;
      expect(made.map((d) => d.event_id)).toEqual([kept]);
      expect(await s.deliverEvent(acme, erased, late.id, T0 + 3)).toEqual({ ok: false, reason: 'event_erased' });
    });
  });
});

/** Everything stored, as lowercase text: the raw SQLite files, or a pg_dump. */
async function storage(dialect: DialectUnderTest, service: TestService): Promise<string> {
  if (dialect.name === 'sqlite') {
    const file = service.database.url;
    return [file, `${file}-wal`, `${file}-shm`]
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f).toString('latin1'))
      .join('\n')
      .toLowerCase();
  }
  const { stdout } = await run('/usr/bin/pg_dump', ['--no-owner', service.database.url], {
    maxBuffer: 256 * 1024 * 1024,
  });
  return stdout.toLowerCase();
}

/** How often `needle` occurs in `text` (a count reads better than a megabyte of text in a failure). */
/** Free pages made by another connection: a table filled and dropped. A rebuild (VACUUM) leaves none. */
function makeFreePages(side: Database.Database): void {
  side.exec('create table scratch (x text)');
  const fill = side.prepare('insert into scratch values (?)');
  side.transaction(() => {
    for (let i = 0; i < 500; i++) fill.run('x'.repeat(2000));
  })();
  side.exec('drop table scratch');
}

function freePageCount(side: Database.Database): number {
  return Number(side.pragma('freelist_count', { simple: true }));
}

function occurrences(text: string, needle: string): number {
  let count = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) count++;
  return count;
}

const data = (signer: string, documentId: string, extra: Record<string, unknown> = {}) => ({
  document_id: documentId,
  signer_email: signer,
  audit_url: `https://sign.example.com/audit/${documentId}`,
  ...extra,
});

describe.each(DIALECTS)('POST /v1/erasure on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService | undefined;
    let receiver: Receiver | undefined;
    afterEach(async () => {
      await service?.close();
      await receiver?.close();
      service = undefined;
      receiver = undefined;
    });

    /** A service delivering to a receiver that answers with what it got (and the signer in a header). */
    async function start() {
      const held = new Set<string>();
      const inFlight = gate();
      receiver = await startReceiver((req) => {
        const signer = String((JSON.parse(req.body) as { data: { signer_email: string } }).data.signer_email);
        const answer = { status: 200, body: req.body, headers: { 'x-signer': signer } };
        // The first of the ordered document's deliveries is held open until the test releases it:
        // it is in flight at the erasure.
        if (req.url === '/ordered' && signer === ERASE && held.size === 0) {
          held.add(req.body);
          return { ...answer, until: inFlight.promise };
        }
        return answer;
      });
      // The held send must not time out, however long the test takes to release it.
      const svc = await startTestService(dialect, { dispatcher: { requestTimeoutMs: 10 * 60_000 } });
      service = svc;
      return { svc, api: apiOf(svc), url: (receiver as Receiver).url, release: inFlight.release };
    }

    async function subscribe(svc: TestService, body: Record<string, unknown>): Promise<string> {
      const res = await svc.request({ method: 'POST', url: '/v1/webhooks/subscriptions', payload: body });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().subscriptions[0].id as string;
    }

    async function events(svc: TestService): Promise<{ id: string; data: Record<string, unknown> }[]> {
      const res = await svc.request({ method: 'GET', url: '/v1/events?limit=100' });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().events;
    }

    /** Every delivery of the account, with its attempts. */
    async function deliveries(svc: TestService): Promise<DeliveryView[]> {
      const api = apiOf(svc);
      const list = await api.deliveriesOf('limit=100');
      return Promise.all(list.map((d) => api.delivery(d.id)));
    }

    const echoes = (views: DeliveryView[], needle: string) =>
      views
        .flatMap((d) => d.attempts ?? [])
        .filter((a) =>
          `${a.response_excerpt ?? ''} ${JSON.stringify(a.response_headers ?? {})} ${a.error ?? ''}`
            .toLowerCase()
            .includes(needle),
        ).length;

    it('leaves no trace of the address in storage, cancels what was not delivered, and keeps everyone else', async () => {
      const { svc, api, url, release } = await start();
      await subscribe(svc, { target_url: `${url}/signed`, event_type: 'document.signed' });
      const paused = await subscribe(svc, { target_url: `${url}/paused`, event_type: 'document.signed' });
      await api.patch(paused, { status: 'paused' });
      await subscribe(svc, { target_url: `${url}/ordered`, event_type: 'document.sent', ordering: 'document' });

      const erased = [
        (await api.published('document.signed', data(ERASE, 'doc_1'))).id,
        (await api.published('document.signed', data('Erase.Me@Example.COM', 'doc_2'))).id,
        (await api.published('document.signed', data('other@example.com', 'doc_3', { cc: [ERASE] }))).id,
      ];
      const keptIds = [
        (await api.published('document.signed', data(KEEP, 'doc_4'))).id,
        (await api.published('document.signed', data(KEEP, 'doc_5'))).id,
      ];
      await (receiver as Receiver).waitFor(5);
      await eventually('the signed deliveries to be delivered', async () => {
        const views = await deliveries(svc);
        return views.filter((d) => d.status === 'delivered').length === 5 ? true : undefined;
      });

      // Refused requests change nothing.
      const before = await events(svc);
      const bad: [unknown, string, string][] = [
        [{}, 'validation_failed', 'body: give exactly one of signer_email and document_id'],
        [
          { signer_email: ERASE, document_id: 'doc_1' },
          'validation_failed',
          'body: give exactly one of signer_email and document_id',
        ],
        [{ signer_email: 'not an address' }, 'validation_failed', 'signer_email: must be an email address'],
        [{ signer_email: 42 }, 'validation_failed', 'signer_email: must be string'],
        [{ document_id: '' }, 'validation_failed', 'document_id: must be a non-empty string'],
        [{ email: ERASE }, 'validation_failed', 'email: is not a known field'],
      ];
      for (const [payload, code, message] of bad) {
        const res = await svc.request({ method: 'POST', url: '/v1/erasure', payload: payload as object });
        expectError(res, 400, code);
        expect(res.json().error.message, JSON.stringify(payload)).toBe(message);
      }
      expectError(await svc.request({ method: 'POST', url: '/v1/erasure' }), 400, 'validation_failed');
      const malformed = await svc.request({
        method: 'POST',
        url: '/v1/erasure',
        headers: { 'content-type': 'application/json' },
        payload: `{"signer_email":`,
      });
      expectError(malformed, 400, 'malformed_json');
      const publisher = await svc.tokenFor('acme', { scopes: ['read', 'write', 'publish'] });
      expectError(
        await svc.request({
          method: 'POST',
          url: '/v1/erasure',
          payload: { signer_email: ERASE },
          token: publisher.token,
        }),
        403,
        'forbidden',
      );
      expectError(
        await svc.request({ method: 'POST', url: '/v1/erasure', payload: { signer_email: ERASE }, token: null }),
        401,
        'unauthorized',
      );
      expect(await events(svc)).toEqual(before);

      // One document, ordered: the first is in flight when the erasure comes, the second waits
      // behind it, and a third, about someone else, waits behind both.
      const orderedErased = [
        (await api.published('document.sent', data(ERASE, 'doc_shared'))).id,
        (await api.published('document.sent', data(ERASE, 'doc_shared'))).id,
      ];
      const orderedKept = (await api.published('document.sent', data(KEEP, 'doc_shared'))).id;
      await (receiver as Receiver).waitFor(6);
      const echoed = echoes(await deliveries(svc), ERASE);
      expect(echoed).toBe(3);
      expect(occurrences(await storage(dialect, svc), ERASE)).toBeGreaterThan(0);

      const erasing = svc.request({
        method: 'POST',
        url: '/v1/erasure',
        payload: { signer_email: 'ERASE.me@EXAMPLE.com' },
      });
      // The erasure cancels the send in flight, then waits for its answer: given once it is cancelled.
      await eventually('the send in flight to be cancelled', async () => {
        const [d] = await api.deliveriesOf(`event_id=${orderedErased[0]}`);
        return d?.status === 'cancelled' ? true : undefined;
      });
      release();
      const res = await erasing;
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({
        events_erased: 5,
        // Held by the paused subscription (3), in flight (1), waiting (1).
        deliveries_cancelled: 5,
        // The three signed answers, and the in-flight one's, logged while the erasure waited for it.
        attempts_scrubbed: echoed + 1,
        documents_scrubbed: 0,
        complete: true,
        warnings: [],
      });

      // The event behind them in the document goes on, and the receiver gets nothing else erased.
      await eventually('the ordered delivery after the erased ones', async () =>
        (receiver as Receiver).requests.some((r) => r.body.includes(orderedKept)) ? true : undefined,
      );
      const listed = await events(svc);
      for (const id of [...erased, ...orderedErased]) {
        expect(listed.find((e) => e.id === id)?.data, id).toEqual({ erased: true });
      }
      for (const id of [...keptIds, orderedKept]) {
        expect(listed.find((e) => e.id === id)?.data.signer_email, id).toBe(KEEP);
      }
      const views = await deliveries(svc);
      const statusOf = (eventId: string) =>
        views
          .filter((d) => d.event_id === eventId)
          .map((d) => d.status)
          .sort();
      expect(statusOf(erased[0] as string)).toEqual(['cancelled', 'delivered']);
      expect(statusOf(keptIds[0] as string)).toEqual(['delivered', 'held']);
      expect(statusOf(orderedErased[0] as string)).toEqual(['cancelled']);
      expect(statusOf(orderedErased[1] as string)).toEqual(['cancelled']);
      await eventually('the kept ordered delivery to be delivered', async () => {
        const d = (await apiOf(svc).deliveriesOf(`event_id=${orderedKept}`))[0];
        return d?.status === 'delivered' ? true : undefined;
      });
      expect(echoes(views, ERASE)).toBe(0);
      expect(echoes(views, KEEP)).toBeGreaterThan(0);
      const resent = views.find((d) => d.event_id === erased[0] && d.status === 'delivered') as DeliveryView;
      expect(JSON.parse((await apiOf(svc).delivery(resent.id)).request?.body ?? '{}').data).toEqual({ erased: true });

      const stored = await storage(dialect, svc);
      expect(occurrences(stored, ERASE)).toBe(0);
      expect(occurrences(stored, KEEP)).toBeGreaterThan(0);
    }, 60_000);

    it('limits erasures per account: past the limit a 429 with Retry-After, and nothing erased', async () => {
      const svc = await startTestService(dialect, { erasureRateLimit: { max: 2, windowMs: 60 * 60_000 } });
      service = svc;
      const api = apiOf(svc);
      await api.published('document.signed', {
        document_id: 'doc_1',
        signer_email: ERASE,
        audit_url: 'https://x.example/a',
      });
      const erase = (email: string, token?: string) =>
        svc.request({ method: 'POST', url: '/v1/erasure', payload: { signer_email: email }, token });
      expect((await erase('nobody@example.com')).statusCode).toBe(200);
      expect((await erase('nobody.else@example.com')).statusCode).toBe(200);
      const refused = await erase(ERASE);
      expect(expectError(refused, 429, 'rate_limited').message).toMatch(
        /^this account may erase 2 times per 1 hour; retry in /,
      );
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      const [event] = (await svc.request({ method: 'GET', url: '/v1/events?limit=10' })).json().events;
      expect(event.data.signer_email).toBe(ERASE);
      // Another account has a limit of its own; an invalid request is refused before it counts.
      const other = await svc.tokenFor('globex');
      expect(
        (await svc.request({ method: 'POST', url: '/v1/erasure', payload: {}, token: other.token })).statusCode,
      ).toBe(400);
      expect((await erase('nobody@example.com', other.token)).statusCode).toBe(200);
      expect((await erase('nobody@example.com', other.token)).statusCode).toBe(200);
      expect((await erase('nobody@example.com', other.token)).statusCode).toBe(429);
    });

    it.skipIf(dialect.name !== 'sqlite')(
      'rebuilds the SQLite file only when an erasure changed something (SQLite)',
      async () => {
        const svc = await startTestService(dialect);
        service = svc;
        const api = apiOf(svc);
        await api.published('document.signed', {
          document_id: 'doc_1',
          signer_email: ERASE,
          audit_url: 'https://x.example/a',
        });
        // Free pages, which a rebuild (VACUUM) leaves none of: a table made and dropped by another connection.
        const side = new Database(svc.database.url);
        const freePages = () => freePageCount(side);
        try {
          makeFreePages(side);
          expect(freePages()).toBeGreaterThan(0);
          const erase = (email: string) =>
            svc.request({ method: 'POST', url: '/v1/erasure', payload: { signer_email: email } });
          const nothing = await erase('nobody@example.com');
          expect(nothing.json()).toMatchObject({ events_erased: 0, attempts_scrubbed: 0, complete: true });
          expect(freePages()).toBeGreaterThan(0);
          const matched = await erase(ERASE);
          expect(matched.json()).toMatchObject({ events_erased: 1, complete: true });
          expect(freePages()).toBe(0);
          // What it owed is paid: the next erasure that matches nothing rebuilds nothing again.
          makeFreePages(side);
          expect((await erase(ERASE)).json()).toMatchObject({ events_erased: 0, complete: true });
          expect(freePages()).toBeGreaterThan(0);
        } finally {
          side.close();
        }
      },
    );

    it('leaves no copy in pages written before the erasure either: a larger history, with retries', async () => {
      const { svc, url } = await start();
      // Some first attempts fail: retries log attempts out of key order, so SQLite splits and
      // rebalances pages, which leaves old copies of rows in their unused space. Updating the rows
      // alone, even with secure_delete, leaves such copies (this test fails without the rebuild).
      const tried = new Set<string>();
      (receiver as Receiver).respond((req, index) => {
        const delivery = `${req.url} ${String(req.headers['webhook-id'])}`;
        const first = !tried.has(delivery);
        tried.add(delivery);
        return { status: first && index % 3 === 0 ? 500 : 200, body: req.body };
      });
      for (const n of [1, 2, 3]) await subscribe(svc, { target_url: `${url}/bulk${n}`, event_type: 'document.signed' });
      for (let batch = 0; batch < 3; batch++) {
        const events = Array.from({ length: 100 }, (_, i) => ({
          event: 'document.signed',
          data: data(i % 2 === 0 ? ERASE : `keep${batch}.${i}@example.com`, `doc_${batch}_${i}`, {
            name: 'x'.repeat(i % 50),
          }),
        }));
        const res = await svc.request({ method: 'POST', url: '/v1/events/batch', payload: { events } });
        expect(res.statusCode, res.body).toBe(202);
      }
      await eventually(
        'every delivery to be delivered',
        async () => {
          const { counts } = await svc.store.deliveryCountsSince(svc.accountId, 0, 10_000);
          return counts.delivered === 900 ? true : undefined;
        },
        60_000,
      );
      expect(occurrences(await storage(dialect, svc), ERASE)).toBeGreaterThan(0);

      const res = await svc.request({ method: 'POST', url: '/v1/erasure', payload: { signer_email: ERASE } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ events_erased: 150, deliveries_cancelled: 0, complete: true, warnings: [] });
      expect(res.json().attempts_scrubbed).toBeGreaterThanOrEqual(450);
      const stored = await storage(dialect, svc);
      expect(occurrences(stored, ERASE)).toBe(0);
      expect(occurrences(stored, 'keep2.99@example.com')).toBeGreaterThan(0);
    }, 90_000);

    it('erases a document from every event, attempt and index, and answers with the counts', async () => {
      const { svc, api, url } = await start();
      await subscribe(svc, { target_url: `${url}/signed`, event_type: 'document.signed' });
      const secret = 'doc_secret_4711';
      const gone = [
        (await api.published('document.signed', data(KEEP, secret))).id,
        (await api.published('document.signed', data('other@example.com', secret))).id,
      ];
      const kept = (await api.published('document.signed', data(KEEP, 'doc_other_1234'))).id;
      await (receiver as Receiver).waitFor(3);
      await eventually('the deliveries to be delivered', async () => {
        const views = await deliveries(svc);
        return views.filter((d) => d.status === 'delivered').length === 3 ? true : undefined;
      });
      expect(occurrences(await storage(dialect, svc), secret)).toBeGreaterThan(0);

      const res = await svc.request({ method: 'POST', url: '/v1/erasure', payload: { document_id: secret } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({
        events_erased: 2,
        deliveries_cancelled: 0,
        attempts_scrubbed: 2,
        documents_scrubbed: 0,
        complete: true,
        warnings: [],
      });
      const listed = await events(svc);
      for (const id of gone) expect(listed.find((e) => e.id === id)?.data).toEqual({ erased: true });
      expect(listed.find((e) => e.id === kept)?.data.document_id).toBe('doc_other_1234');
      const byDocument = await svc.request({ method: 'GET', url: `/v1/events?document_id=${secret}` });
      expect(byDocument.json().events).toEqual([]);
      const stored = await storage(dialect, svc);
      expect(occurrences(stored, secret)).toBe(0);
      expect(occurrences(stored, 'doc_other_1234')).toBeGreaterThan(0);
      // Again: nothing more to do, nothing counted twice.
      const again = await svc.request({ method: 'POST', url: '/v1/erasure', payload: { document_id: secret } });
      expect(again.json()).toMatchObject({ events_erased: 0, attempts_scrubbed: 0, complete: true });
    }, 60_000);

    it('erases a signer from the documents lifecycle too: signers, audit entries and events, and the chain still verifies', async () => {
      const { svc, url } = await start();
      await subscribe(svc, { target_url: `${url}/docs`, event_types: ['document.sent', 'document.signed'] });
      const post = (path: string, payload?: Record<string, unknown>) =>
        svc.request({ method: 'POST', url: path, ...(payload === undefined ? {} : { payload }) });
      const made = await post('/v1/documents', {
        title: 'Erasure NDA',
        signers: [{ email: ERASE, name: 'Erin Erased' }, { email: KEEP }],
      });
      expect(made.statusCode, made.body).toBe(201);
      const doc = made.json();
      const [erin, kim] = doc.signers as { id: string }[];
      expect((await post(`/v1/documents/${doc.id}/send`)).statusCode).toBe(200);
      expect((await post(`/v1/documents/${doc.id}/signers/${erin?.id}/sign`)).statusCode).toBe(200);
      await eventually('the three webhooks', async () =>
        (receiver as Receiver).requests.length >= 3 ? true : undefined,
      );
      expect(occurrences(await storage(dialect, svc), ERASE)).toBeGreaterThan(0);

      const res = await post('/v1/erasure', { signer_email: ERASE });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ events_erased: 2, documents_scrubbed: 1, complete: true });

      const after = (await svc.request({ method: 'GET', url: `/v1/documents/${doc.id}` })).json();
      expect(after.signers).toEqual([
        expect.objectContaining({ id: erin?.id, email: null, name: null, status: 'signed' }),
        expect.objectContaining({ id: kim?.id, email: KEEP, status: 'pending' }),
      ]);
      const { pathname, search } = new URL(after.audit_url);
      const trail = (await svc.request({ method: 'GET', url: `${pathname}${search}`, token: null })).json();
      expect(trail.verification).toEqual({ valid: true, entries: 3, first_broken: null });
      expect(trail.entries.map((e: { action: string; actor: string | null }) => [e.action, e.actor])).toEqual([
        ['created', 'platform'],
        ['sent', 'platform'],
        ['signed', null],
      ]);
      expect(trail.entries[2]).toMatchObject({ actor: null, detail: null });
      const full = (await svc.request({ method: 'GET', url: `/v1/documents/${doc.id}/audit/entries` })).json();
      expect(full.entries[2]).toMatchObject({ actor: null, ip: null, user_agent: null, detail: null, salt: null });
      // The erased signer can take no step; the other one signs, and the document completes.
      const refused = await post(`/v1/documents/${doc.id}/signers/${erin?.id}/decline`, { reason: 'too late' });
      expect(refused.statusCode).toBe(409);
      expect((await post(`/v1/documents/${doc.id}/signers/${kim?.id}/sign`)).json().status).toBe('completed');
      expect((await svc.request({ method: 'GET', url: `/v1/documents/${doc.id}/audit/verify` })).json().valid).toBe(
        true,
      );
      const stored = await storage(dialect, svc);
      expect(occurrences(stored, ERASE)).toBe(0);
      expect(occurrences(stored, 'erin erased')).toBe(0);
      expect(occurrences(stored, KEEP)).toBeGreaterThan(0);
    }, 60_000);

    it('erases a signer’s decline reason, a document’s external_id, and an erased entry written back does not verify', async () => {
      const { svc } = await start();
      const post = (path: string, payload?: Record<string, unknown>) =>
        svc.request({ method: 'POST', url: path, ...(payload === undefined ? {} : { payload }) });
      const verify = async (id: string) =>
        (await svc.request({ method: 'GET', url: `/v1/documents/${id}/audit/verify` })).json();
      const doc = (
        await post('/v1/documents', { title: 'Declined NDA', signers: [{ email: ERASE }, { email: KEEP }] })
      ).json();
      const [erin] = doc.signers as { id: string }[];
      expect((await post(`/v1/documents/${doc.id}/send`)).statusCode).toBe(200);
      const declined = await post(`/v1/documents/${doc.id}/signers/${erin?.id}/decline`, {
        reason: 'moved to Lisbon, call 555 0199',
      });
      expect(declined.statusCode, declined.body).toBe(200);
      const ref = (
        await post('/v1/documents', { title: 'Referenced', external_id: 'crm-4711-kim', signers: [{ email: KEEP }] })
      ).json();
      expect(occurrences(await storage(dialect, svc), 'call 555 0199')).toBeGreaterThan(0);

      expect((await post('/v1/erasure', { signer_email: ERASE })).json()).toMatchObject({ complete: true });
      const after = (await svc.request({ method: 'GET', url: `/v1/documents/${doc.id}` })).json();
      expect(after.signers[0]).toMatchObject({ email: null, status: 'declined', decline_reason: null });
      expect(await verify(doc.id)).toMatchObject({ valid: true });

      expect((await post('/v1/erasure', { document_id: ref.id })).json()).toMatchObject({ complete: true });
      expect((await svc.request({ method: 'GET', url: `/v1/documents/${ref.id}` })).json()).toMatchObject({
        title: '(erased)',
        external_id: null,
      });
      const stored = await storage(dialect, svc);
      expect(occurrences(stored, 'call 555 0199')).toBe(0);
      expect(occurrences(stored, 'crm-4711-kim')).toBe(0);

      // Someone with write access gives the erased decline a detail again: it no longer verifies.
      const raw = openDialect(parseDatabaseUrl(svc.database.url));
      try {
        await sql`update audit_entries set detail = ${'{"reason":"signed after all"}'} where document_id = ${doc.id} and action = 'declined'`.execute(
          raw.db,
        );
      } finally {
        await raw.close();
      }
      expect(await verify(doc.id)).toMatchObject({ valid: false, first_broken: { seq: 3, reason: 'hash' } });
    }, 60_000);
  });
});

describe('SQLite file rebuilds owed by erasure', () => {
  let service: TestService | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await service?.close();
    service = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** Free pages made by another connection (a table filled and dropped); a rebuild leaves none. */
  function freePagesOf(file: string) {
    const side = new Database(file);
    cleanups.push(async () => {
      side.close();
    });
    return {
      make: () => makeFreePages(side),
      count: () => freePageCount(side),
      owed: () => side.prepare(`select value from countersign_settings where key = 'erasure_rewrite_owed'`).get(),
    };
  }

  async function publishFor(svc: TestService, email: string) {
    await apiOf(svc).published('document.signed', {
      document_id: `doc_${email}`,
      signer_email: email,
      audit_url: 'https://x.example/a',
    });
  }

  it('rebuilds at most once per interval: an erasure sooner says when, and its rebuild runs then', async () => {
    const svc = await startTestService(sqliteDialect, { fileRebuildEveryMs: 2_000 });
    service = svc;
    const pages = freePagesOf(svc.database.url);
    const erase = (email: string) =>
      svc.request({ method: 'POST', url: '/v1/erasure', payload: { signer_email: email } });
    await publishFor(svc, 'first@example.com');
    await publishFor(svc, ERASE);

    pages.make();
    expect((await erase('first@example.com')).json()).toMatchObject({ events_erased: 1, complete: true, warnings: [] });
    expect(pages.count()).toBe(0);

    pages.make();
    const sooner = (await erase(ERASE)).json();
    expect(sooner).toMatchObject({ events_erased: 1, complete: false });
    const [warning] = sooner.warnings as string[];
    const at = Date.parse(/rebuilt at (\S+) /.exec(warning ?? '')?.[1] ?? '');
    expect(Number.isNaN(at), warning).toBe(false);
    // Not rebuilt yet, and owed; then rebuilt in the background, and no longer owed.
    expect(pages.count()).toBeGreaterThan(0);
    expect(pages.owed()).toBeDefined();
    await eventually('the scheduled rebuild', async () => (pages.count() === 0 && !pages.owed() ? true : undefined));
    expect(occurrences(await storage(sqliteDialect, svc), ERASE)).toBe(0);
  });

  it('lets the event loop go on while the file is rebuilt', async () => {
    const database = await sqliteDialect.create();
    cleanups.push(() => database.drop());
    const dialect = openDialect(parseDatabaseUrl(database.url));
    const opened = await openStore(dialect);
    cleanups.push(() => opened.close());
    // A file of some megabytes, so that its rebuild takes a while.
    const side = new Database(database.url);
    side.exec('create table filler (x text)');
    const fill = side.prepare('insert into filler values (?)');
    side.transaction(() => {
      for (let i = 0; i < 20_000; i++) fill.run(`${i}`.padEnd(500, 'y'));
    })();
    side.close();

    let turns = 0;
    let rebuilding = true;
    const spin = () => {
      if (!rebuilding) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const problem = await dialect.rebuildFile?.();
    rebuilding = false;
    expect(problem).toBeUndefined();
    // A rebuild on the event loop's own thread lets no turn run while it copies the file.
    expect(turns).toBeGreaterThan(20);
  });

  it('schedules at start a rebuild that an earlier process owed', async () => {
    const database = await sqliteDialect.create();
    cleanups.push(() => database.drop());
    const first = await openStore(openDialect(parseDatabaseUrl(database.url)));
    await first.close();
    const pages = freePagesOf(database.url);
    pages.make();
    const side = new Database(database.url);
    side
      .prepare(`insert into countersign_settings (key, value) values ('erasure_rewrite_owed', 'left-by-a-crash')`)
      .run();
    side.close();
    expect(pages.count()).toBeGreaterThan(0);

    const reopened = await openStore(openDialect(parseDatabaseUrl(database.url)), { fileRebuildEveryMs: 60_000 });
    cleanups.push(() => reopened.close());
    await eventually('the owed rebuild', async () => (pages.count() === 0 && !pages.owed() ? true : undefined));
  });
});
