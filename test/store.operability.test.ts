// The store contract for what the operability work added, on every dialect: subscriptions with
// several event types (and the seed's 409 across them), secrets that each keep signing until their
// own expiry, the callback's signing secret, recovering missed events, delivering one event again,
// lease renewal and takeovers, what recording reports, queue figures, the processes using the
// database, and migration 003 over data written before it.
import { type Kysely, type Migration, Migrator, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../src/domain/ids.js';
import { openStore } from '../src/store/kysely-store.js';
import * as initial from '../src/store/migrations/001_initial.js';
import * as fanOutVersion from '../src/store/migrations/002_fan_out_version.js';
import { migrateToLatest } from '../src/store/migrator.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import type { Account, PublishRequest, Store, Subscription } from '../src/store/store.js';
import { DIALECTS, dialectLabel, type TestDatabase } from './helpers/databases.js';
import {
  callbackRow,
  HOUR,
  ids,
  LEASE_MS,
  result,
  retired,
  SECOND,
  SETTINGS,
  subscriptionRow,
  T0,
} from './helpers/store-fixtures.js';

describe.each(DIALECTS)('store operability on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let database: TestDatabase;
    let store: Store;
    let acme: Account;
    let other: Account;

    beforeEach(async () => {
      database = await dialect.create();
      store = await openStore(openDialect(parseDatabaseUrl(database.url)));
      acme = await store.ensureAccount('acme', T0);
      other = await store.ensureAccount('globex', T0);
    });
    afterEach(async () => {
      await store.close();
      await database.drop();
    });

    async function addSubscription(accountId: string, overrides: Partial<Subscription> = {}): Promise<Subscription> {
      const row = subscriptionRow(accountId, overrides);
      await store.createSubscription(row);
      return row;
    }

    async function publish(type: string, now: number, extra: Partial<PublishRequest> = {}) {
      const [published] = await store.publishEvents(
        [
          {
            accountId: acme.id,
            type,
            dataJson: '{"document_id":"doc_1"}',
            documentId: 'doc_1',
            occurredAt: now,
            ...extra,
          },
        ],
        now,
      );
      if (!published?.ok) throw new Error('publish refused');
      return published.event;
    }

    /** Runs one statement over a connection of its own, as an operator's hand-written SQL would. */
    async function rawSql(statement: ReturnType<typeof sql>): Promise<void> {
      const direct = openDialect(parseDatabaseUrl(database.url));
      try {
        await statement.execute(direct.db);
      } finally {
        await direct.close();
      }
    }

    async function deliveriesTo(subscriptionId: string) {
      return (await store.listDeliveries(acme.id, { limit: 100, subscriptionId })).items;
    }

    describe('subscriptions with several event types', () => {
      it('fans each event type out to the one subscription that takes several', async () => {
        const sub = await addSubscription(acme.id, { event_types: 'document.sent document.signed' });
        const sent = await publish('document.sent', T0);
        const signed = await publish('document.signed', T0 + 1);
        const declined = await publish('document.declined', T0 + 2);
        expect([sent.deliveryCount, signed.deliveryCount, declined.deliveryCount]).toEqual([1, 1, 0]);
        expect((await deliveriesTo(sub.id)).map((d) => d.event_id).sort()).toEqual([sent.id, signed.id].sort());
      });

      it('refuses with 409 a second subscription at the same target_url sharing any event type, naming it', async () => {
        const first = await addSubscription(acme.id, { event_types: 'document.sent document.signed' });
        await expect(
          addSubscription(acme.id, { event_types: 'document.declined document.signed' }),
        ).rejects.toMatchObject({
          code: 'subscription_exists',
          message: expect.stringContaining(`${first.id} takes document.signed`),
        });
        // No overlap: allowed; the same types in another account: allowed.
        await addSubscription(acme.id, { event_types: 'document.declined' });
        await addSubscription(other.id, { event_types: 'document.sent document.signed' });
        expect((await store.listSubscriptions(acme.id, { limit: 10 })).items).toHaveLength(2);
      });

      // SQLite has one writer, and two stores in one process would only wait on each other's lock.
      it.skipIf(dialect.name === 'sqlite')(
        'holds the 409 when two nodes create overlapping subscriptions at the same moment',
        async () => {
          const second = await openStore(openDialect(parseDatabaseUrl(database.url)));
          try {
            const outcomes = await Promise.allSettled([
              store.createSubscription(subscriptionRow(acme.id, { event_types: 'document.sent document.signed' })),
              second.createSubscription(subscriptionRow(acme.id, { event_types: 'document.signed' })),
            ]);
            expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
            expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({
              reason: { code: 'subscription_exists' },
            });
          } finally {
            await second.close();
          }
        },
      );

      it('changes the event types with an update, and refuses one that would overlap, changing nothing', async () => {
        const a = await addSubscription(acme.id, { event_types: 'document.signed' });
        const b = await addSubscription(acme.id, { event_types: 'document.sent' });
        const updated = await store.updateSubscription(
          acme.id,
          a.id,
          { eventTypes: ['document.signed', 'document.declined'] },
          T0 + SECOND,
        );
        expect(updated?.event_types).toBe('document.signed document.declined');
        expect((await publish('document.declined', T0 + 2)).deliveryCount).toBe(1);
        await expect(
          store.updateSubscription(acme.id, b.id, { eventTypes: ['document.sent', 'document.declined'] }, T0 + 3),
        ).rejects.toMatchObject({ code: 'subscription_exists' });
        expect(await store.getSubscription(acme.id, b.id)).toEqual(b);
        expect((await publish('document.sent', T0 + 4)).deliveryCount).toBe(1);
      });

      it('lists by event_type those that take it among others', async () => {
        const both = await addSubscription(acme.id, { event_types: 'document.sent document.signed' });
        const sentOnly = await addSubscription(acme.id, {
          target_url: 'https://your-app.com/other',
          event_types: 'document.sent',
        });
        const bySigned = await store.listSubscriptions(acme.id, { limit: 10, eventType: 'document.signed' });
        expect(ids(bySigned.items)).toEqual([both.id]);
        const bySent = await store.listSubscriptions(acme.id, { limit: 10, eventType: 'document.sent' });
        expect(ids(bySent.items)).toEqual([sentOnly.id, both.id]);
      });

      it('frees the target_url and its types when a subscription is deleted', async () => {
        const sub = await addSubscription(acme.id, { event_types: 'document.sent document.signed' });
        expect(await store.deleteSubscription(acme.id, sub.id, T0 + 1)).toBe(true);
        await addSubscription(acme.id, { event_types: 'document.signed' });
        expect((await publish('document.sent', T0 + 2)).deliveryCount).toBe(0);
      });
    });

    describe('signing-secret rotation', () => {
      it('keeps every retired secret signing until its own expiry when rotating twice within the grace period', async () => {
        const sub = await addSubscription(acme.id, { signing_secret_sealed: 'first' });
        await store.rotateSigningSecret(acme.id, sub.id, 'second', T0 + 24 * HOUR, T0);
        const twice = await store.rotateSigningSecret(acme.id, sub.id, 'third', T0 + HOUR + 24 * HOUR, T0 + HOUR);
        expect(JSON.parse(twice?.retired_secrets ?? '')).toEqual([
          { sealed: 'second', expires_at: T0 + 25 * HOUR },
          { sealed: 'first', expires_at: T0 + 24 * HOUR },
        ]);
        await publish('document.signed', T0 + 2 * HOUR);
        const [early] = await store.claimDueDeliveries('w', 10, T0 + 2 * HOUR, LEASE_MS);
        expect(early?.target.signingSecretsSealed).toEqual(['third', 'second', 'first']);
        // Past the first one's expiry only: it alone stops signing.
        await publish('document.signed', T0 + 24 * HOUR + 1);
        const [late] = await store.claimDueDeliveries('w', 10, T0 + 24 * HOUR + 1, LEASE_MS);
        expect(late?.target.signingSecretsSealed).toEqual(['third', 'second']);
      });

      it('refuses a rotation that would leave more than ten secrets signing, and changes nothing', async () => {
        const sub = await addSubscription(acme.id);
        for (let i = 0; i < 9; i++) await store.rotateSigningSecret(acme.id, sub.id, `s${i}`, T0 + HOUR, T0 + i);
        const before = await store.getSubscription(acme.id, sub.id);
        await expect(
          store.rotateSigningSecret(acme.id, sub.id, 'one-too-many', T0 + HOUR, T0 + 10),
        ).rejects.toMatchObject({
          code: 'conflict',
          message: expect.stringContaining('at most 10'),
        });
        expect(await store.getSubscription(acme.id, sub.id)).toEqual(before);
        // With no grace for the current one there is room.
        expect((await store.rotateSigningSecret(acme.id, sub.id, 'now', T0 + 10, T0 + 10))?.signing_secret_sealed).toBe(
          'now',
        );
      });

      it('gives the account callback a signing secret of its own, kept across PUTs of its settings', async () => {
        const made = await store.rotateCallbackSecret(other.id, 'cb-first', T0 + HOUR, T0);
        expect(made).toMatchObject({
          url: '',
          auth_type: 'None',
          signing_secret_sealed: 'cb-first',
          retired_secrets: '[]',
        });
        await store.putCallback(callbackRow(acme.id, { auth_type: 'None', bearer_token_sealed: null }));
        await store.rotateCallbackSecret(acme.id, 'cb-1', T0 + HOUR, T0);
        await store.rotateCallbackSecret(acme.id, 'cb-2', T0 + 2 * HOUR, T0 + 1);
        await store.putCallback(
          callbackRow(acme.id, { auth_type: 'None', bearer_token_sealed: null, updated_at: T0 + 2 }),
        );
        expect(await store.getCallback(acme.id)).toMatchObject({
          signing_secret_sealed: 'cb-2',
          retired_secrets: retired('cb-1', T0 + 2 * HOUR),
        });
        await publish('document.signed', T0 + 3);
        const [claimed] = await store.claimDueDeliveries('w', 10, T0 + 3, LEASE_MS);
        expect(claimed?.target).toMatchObject({ kind: 'callback', signingSecretsSealed: ['cb-2', 'cb-1'] });
      });

      it('re-seals the callback signing secrets and every retired secret', async () => {
        await addSubscription(acme.id, { retired_secrets: retired('sub-old', T0 + HOUR) });
        await store.rotateCallbackSecret(acme.id, 'cb-1', T0 + HOUR, T0);
        await store.rotateCallbackSecret(acme.id, 'cb-2', T0 + HOUR, T0);
        // subscription: token, signing, one retired; callback: signing, one retired.
        expect(await store.resealSecrets((sealed) => `v2:${sealed}`)).toBe(5);
        expect(await store.getCallback(acme.id)).toMatchObject({
          signing_secret_sealed: 'v2:cb-2',
          retired_secrets: retired('v2:cb-1', T0 + HOUR),
        });
        const [sub] = (await store.listSubscriptions(acme.id, { limit: 1 })).items;
        expect(sub?.retired_secrets).toBe(retired('v2:sub-old', T0 + HOUR));
      });
    });

    describe('recovering missed events and delivering one again', () => {
      it('recovers the events a disabled subscription never got, and only those', async () => {
        await publish('document.signed', T0 - HOUR); // before the subscription existed
        const sub = await addSubscription(acme.id, { created_at: T0 });
        await publish('document.signed', T0 + 1); // delivered as usual
        await rawSql(sql`update subscriptions set status = 'disabled' where id = ${sub.id}`);
        const missed = [await publish('document.signed', T0 + 10), await publish('document.signed', T0 + 11)];
        await publish('document.sent', T0 + 12); // not its type
        await publish('document.signed', T0 + 13, { onlySubscriptionId: sub.id, test: true }); // a test event
        expect(missed.map((e) => e.deliveryCount)).toEqual([0, 0]);

        const recovered = await store.recoverMissed(acme.id, sub.id, T0 - 2 * HOUR, T0 + HOUR, T0 + 20, 100);
        expect(recovered).toEqual({ recovered: 2, continueFrom: undefined });
        const made = (await deliveriesTo(sub.id)).filter((d) => d.created_at === T0 + 20);
        expect(made.map((d) => d.event_id).sort()).toEqual(ids(missed).sort());
        // Disabled: held until it is active again, then due.
        expect(made.map((d) => d.status)).toEqual(['held', 'held']);
        expect((await store.getEvent(acme.id, missed[0]?.id ?? ''))?.deliveryCount).toBe(1);

        // Again: nothing left to recover.
        expect(await store.recoverMissed(acme.id, sub.id, T0 - 2 * HOUR, T0 + HOUR, T0 + 21, 100)).toEqual({
          recovered: 0,
          continueFrom: undefined,
        });
        await store.updateSubscription(acme.id, sub.id, { status: 'active' }, T0 + 30);
        const claimed = await store.claimDueDeliveries('w', 10, T0 + 30, LEASE_MS);
        expect(claimed.map((c) => c.eventId)).toEqual(expect.arrayContaining(ids(missed)));
      });

      it('recovers a long window in bounded steps that say where to go on', async () => {
        const sub = await addSubscription(acme.id, { status: 'paused', created_at: T0 });
        await rawSql(sql`update subscriptions set status = 'disabled' where id = ${sub.id}`);
        const events = [];
        for (let i = 0; i < 5; i++) events.push(await publish('document.signed', T0 + i));
        const first = await store.recoverMissed(acme.id, sub.id, T0, T0 + HOUR, T0 + 10, 2);
        expect(first).toEqual({ recovered: 2, continueFrom: T0 + 2 });
        const second = await store.recoverMissed(acme.id, sub.id, first?.continueFrom ?? 0, T0 + HOUR, T0 + 11, 2);
        expect(second).toEqual({ recovered: 2, continueFrom: T0 + 4 });
        const third = await store.recoverMissed(acme.id, sub.id, T0, T0 + HOUR, T0 + 12, 2);
        expect(third).toEqual({ recovered: 1, continueFrom: undefined });
        expect((await deliveriesTo(sub.id)).map((d) => d.event_id).sort()).toEqual(ids(events).sort());
        expect(await store.recoverMissed(other.id, sub.id, T0, T0 + HOUR, T0, 2)).toBeUndefined();
      });

      it('delivers one event to one subscription again, whatever became of the first delivery', async () => {
        const sub = await addSubscription(acme.id);
        const event = await publish('document.signed', T0);
        const outcome = await store.deliverEvent(acme.id, event.id, sub.id, T0 + 5);
        expect(outcome).toMatchObject({
          ok: true,
          delivery: { event_id: event.id, subscription_id: sub.id, status: 'pending' },
        });
        expect(await deliveriesTo(sub.id)).toHaveLength(2);
        expect((await store.getEvent(acme.id, event.id))?.deliveryCount).toBe(2);

        const sentOnly = await addSubscription(acme.id, {
          target_url: 'https://x.test/s',
          event_types: 'document.sent',
        });
        expect(await store.deliverEvent(acme.id, event.id, sentOnly.id, T0)).toEqual({
          ok: false,
          reason: 'event_type_not_subscribed',
        });
        expect(await store.deliverEvent(acme.id, newId('evt'), sub.id, T0)).toEqual({
          ok: false,
          reason: 'event_not_found',
        });
        const theirs = await addSubscription(other.id);
        expect(await store.deliverEvent(acme.id, event.id, theirs.id, T0)).toEqual({
          ok: false,
          reason: 'subscription_not_found',
        });
      });
    });

    describe('leases', () => {
      it('renews the lease of a send in flight, so no claim takes it while its holder lives', async () => {
        await addSubscription(acme.id);
        await publish('document.signed', T0);
        const [claimed] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
        if (!claimed) throw new Error('nothing claimed');
        expect(await store.renewLeases('worker-a', [claimed.id], T0 + LEASE_MS - 1, LEASE_MS)).toBe(1);
        expect(await store.claimDueDeliveries('worker-b', 10, T0 + LEASE_MS + 1, LEASE_MS)).toEqual([]);
        // Another owner cannot renew it.
        expect(await store.renewLeases('worker-b', [claimed.id], T0 + LEASE_MS, LEASE_MS)).toBe(0);
      });

      it('says whose lease a claim took over once it ran out', async () => {
        await addSubscription(acme.id);
        await publish('document.signed', T0);
        const [first] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
        expect(first?.takenOverFrom).toBeUndefined();
        const [retaken] = await store.claimDueDeliveries('worker-b', 10, T0 + LEASE_MS + 1, LEASE_MS);
        expect(retaken).toMatchObject({ id: first?.id, takenOverFrom: 'worker-a', attempt: 2 });
      });
    });

    describe('what recording reports', () => {
      it('names the subscriptions a batch disabled, and why', async () => {
        const sub = await addSubscription(acme.id);
        await publish('document.signed', T0);
        const [claimed] = await store.claimDueDeliveries('w', 10, T0, LEASE_MS);
        if (!claimed) throw new Error('nothing claimed');
        const outcome = await store.recordAttempts('w', [result(claimed, 'gone', T0 + 1)], T0 + 1, SETTINGS);
        expect(outcome).toEqual({
          disabled: [
            { id: sub.id, accountId: acme.id, targetUrl: sub.target_url, reason: 'the receiver answered 410 Gone' },
          ],
          queued: 0,
          circuits: [],
        });
      });
    });

    describe('queue figures', () => {
      it('counts what is due, since when, and the deliveries by status that are still work', async () => {
        await addSubscription(acme.id);
        await addSubscription(acme.id, { target_url: 'https://x.test/p', status: 'paused' });
        // Ordered by document, all three events of one document: one held, two waiting behind it.
        await addSubscription(acme.id, { target_url: 'https://x.test/o', status: 'paused', ordering: 'document' });
        for (let i = 0; i < 3; i++) await publish('document.signed', T0 + i);
        const [claimed] = await store.claimDueDeliveries('w', 1, T0 + 10, LEASE_MS);
        if (!claimed) throw new Error('nothing claimed');
        await store.recordAttempts('w', [result(claimed, 'failed', T0 + 11)], T0 + 11, SETTINGS);
        const stats = await store.queueStats(T0 + 20);
        expect(stats).toEqual({
          due: 2,
          oldestDueAt: T0 + 1,
          byStatus: { pending: 2, sending: 0, held: 4, failed: 1, waiting: 2, postponed: 0 },
          circuits: { open: 0, half_open: 0 },
        });
        expect(await store.queueStats(T0)).toMatchObject({ due: 0, oldestDueAt: undefined });
      });
    });

    describe('events, tests and documents', () => {
      it('keeps test events out of the list unless asked, and filters events and deliveries by document', async () => {
        const sub = await addSubscription(acme.id, { event_types: 'document.signed document.sent' });
        await store.putCallback(callbackRow(acme.id));
        const real = await publish('document.signed', T0, { documentId: 'doc_a', dataJson: '{"document_id":"doc_a"}' });
        const test = await publish('document.signed', T0 + 1, { onlySubscriptionId: sub.id, test: true });
        const otherDoc = await publish('document.sent', T0 + 2, {
          documentId: 'doc_b',
          dataJson: '{"document_id":"doc_b"}',
        });
        expect(test.test).toBe(true);
        expect(ids((await store.listEvents(acme.id, { limit: 10 })).items)).toEqual([otherDoc.id, real.id]);
        expect(ids((await store.listEvents(acme.id, { limit: 10, includeTests: true })).items)).toEqual([
          otherDoc.id,
          test.id,
          real.id,
        ]);
        expect(ids((await store.listEvents(acme.id, { limit: 10, documentId: 'doc_a' })).items)).toEqual([real.id]);
        const ofDocA = (await store.listDeliveries(acme.id, { limit: 10, documentId: 'doc_a' })).items;
        expect(ofDocA.map((d) => d.event_id)).toEqual([real.id, real.id]);
        const toCallback = (await store.listDeliveries(acme.id, { limit: 10, target: 'callback' })).items;
        expect(toCallback.every((d) => d.subscription_id === null)).toBe(true);
        expect(toCallback).toHaveLength(2);
        const toSubs = (await store.listDeliveries(acme.id, { limit: 10, target: 'subscription' })).items;
        expect(toSubs.map((d) => d.subscription_id)).toEqual([sub.id, sub.id, sub.id]);
      });
    });

    describe('the processes using the database', () => {
      const node = (id: string, heartbeatAt: number) => ({
        id,
        kind: 'serve' as const,
        hostname: 'host-a',
        pid: 42,
        startedAt: heartbeatAt,
        heartbeatAt,
      });

      it('refuses to re-seal while a process has a fresh heartbeat, and re-seals once it is gone or stale', async () => {
        await addSubscription(acme.id);
        await store.registerNode(node('n1', T0));
        const refused = await store.resealSecretsUnlessInUse(T0 - 30 * SECOND, (s) => `v2:${s}`);
        expect(refused).toMatchObject({ ok: false, live: [{ id: 'n1', kind: 'serve', pid: 42 }] });
        expect((await store.listSubscriptions(acme.id, { limit: 1 })).items[0]?.signing_secret_sealed).toBe(
          'sealed-signing-secret',
        );
        // Its heartbeat goes stale (it was killed): it no longer counts.
        expect(await store.resealSecretsUnlessInUse(T0 + 1, (s) => `v2:${s}`)).toEqual({ ok: true, count: 2 });
        expect(await store.heartbeatNode('n1', T0 + 5)).toBe(true);
        await store.removeNode('n1');
        expect(await store.heartbeatNode('n1', T0 + 6)).toBe(false);
        expect(await store.liveNodes(0)).toEqual([]);
      });

      it('keeps the first value of a setting, and finds a sealed secret to test a key against', async () => {
        expect(await store.anySealedSecret()).toBeUndefined();
        expect(await store.putSettingIfAbsent('k', 'first')).toBe('first');
        expect(await store.putSettingIfAbsent('k', 'second')).toBe('first');
        expect(await store.getSetting('k')).toBe('first');
        const sub = await addSubscription(acme.id, { signing_secret_sealed: 'v2.abc.iv.body' });
        // With where it belongs, so that the key is tested as the value was sealed.
        expect(await store.anySealedSecret()).toEqual({
          sealed: 'v2.abc.iv.body',
          context: { purpose: 'signing_secret', table: 'subscriptions', row: sub.id, account: acme.id },
        });
      });
    });

    describe('migration 003 over data written before it', () => {
      it('keeps event types, a previous secret in grace, and the document ids of stored events', async () => {
        await store.close();
        await database.drop();
        database = await dialect.create();
        const raw = openDialect(parseDatabaseUrl(database.url));
        const migrations: Record<string, Migration> = { '001_initial': initial, '002_fan_out_version': fanOutVersion };
        const migrator = new Migrator({
          db: raw.db,
          provider: { getMigrations: async () => migrations },
          migrationTableName: 'countersign_migrations',
          migrationLockTableName: 'countersign_migration_lock',
        });
        expect((await migrator.migrateToLatest()).error).toBeUndefined();
        // biome-ignore lint/suspicious/noExplicitAny: rows of the schema as it was at 002.
        const db = raw.db as unknown as Kysely<any>;
        await db.insertInto('accounts').values({ id: 'acc_1', name: 'acme', created_at: T0 }).execute();
        await db
          .insertInto('subscriptions')
          .values({
            id: 'sub_1',
            account_id: 'acc_1',
            target_url: 'https://your-app.com/hook',
            event_type: 'document.sent',
            status: 'active',
            secret_token_sealed: null,
            signing_secret_sealed: 'current',
            previous_secret_sealed: 'previous',
            previous_secret_expires_at: T0 + HOUR,
            disabled_reason: null,
            failing_since: null,
            created_at: T0,
            updated_at: T0,
            deleted_at: null,
          })
          .execute();
        await db
          .insertInto('events')
          .values({
            id: 'evt_1',
            account_id: 'acc_1',
            type: 'document.sent',
            data: '{"document_id":"doc_9","signer_email":"a@b.co"}',
            occurred_at: T0,
            created_at: T0,
            idempotency_key: null,
            request_hash: null,
            delivery_count: 0,
          })
          .execute();
        expect(await migrateToLatest(raw)).toEqual([
          '003_types_secrets_and_log',
          '004_portal',
          '005_listen',
          '006_delivery_controls',
          '007_documents',
          '008_endpoint_isolation',
          '009_event_source',
          '010_keyed_audit_chain',
          '011_audit_links',
        ]);
        await raw.close();

        store = await openStore(openDialect(parseDatabaseUrl(database.url)));
        const sub = await store.getSubscription('acc_1', 'sub_1');
        expect(sub).toMatchObject({
          event_types: 'document.sent',
          retired_secrets: retired('previous', T0 + HOUR),
          // Migration 005: what was stored before listen sessions is a webhook subscription.
          kind: 'webhook',
          listen_seen_at: null,
        });
        expect(await store.getEvent('acc_1', 'evt_1')).toMatchObject({ documentId: 'doc_9', test: false });
        const [published] = await store.publishEvents(
          [{ accountId: 'acc_1', type: 'document.sent', dataJson: '{}', occurredAt: T0 + 1 }],
          T0 + 1,
        );
        expect(published).toMatchObject({ ok: true, event: { deliveryCount: 1 } });
        // Its delivery is the dispatchers' to claim, not a listen session's.
        const [claimed] = await store.claimDueDeliveries('worker-a', 10, T0 + 1, 30_000);
        expect(claimed).toMatchObject({ subscriptionId: 'sub_1' });
        await expect(
          store.createSubscription(
            subscriptionRow('acc_1', { target_url: 'https://your-app.com/hook', event_types: 'document.sent' }),
          ),
        ).rejects.toMatchObject({ code: 'subscription_exists' });
      });
    });
  });
});
