// The Store contract, written once and run against every dialect (the way Hono runs one router
// suite against every router). Each test opens a store on a fresh database and drives the clock
// through the `now` arguments, so nothing here sleeps.
import { execFile } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CompiledQuery, sql } from 'kysely';
import { decodeTime } from 'ulidx';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../src/domain/ids.js';
import { CountersignError } from '../src/errors.js';
import { deliveryCountsQuery } from '../src/store/account-overview.js';
import { openStore } from '../src/store/kysely-store.js';
import { migrateToLatest } from '../src/store/migrator.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import { ATTEMPT_STATS_KEEP_MS } from '../src/store/queue/record-attempts.js';
import { slotMicros } from '../src/store/queue/throttle.js';
import { RESTART_AT_FRAMES, startCheckpointer } from '../src/store/sqlite/checkpointer.js';
import type {
  Account,
  AttemptOutcome,
  ClaimedDelivery,
  Delivery,
  EventRecord,
  PublishRequest,
  Store,
  Subscription,
} from '../src/store/store.js';
import { DIALECTS, dialectLabel, type TestDatabase } from './helpers/databases.js';
import {
  allPages,
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
  UNSIGNED,
} from './helpers/store-fixtures.js';

const run = promisify(execFile);
/** Every migration, in order (both dialects record each, whether or not it changes anything there). */
const MIGRATIONS = [
  '001_initial',
  '002_fan_out_version',
  '003_types_secrets_and_log',
  '004_portal',
  '005_listen',
  '006_delivery_controls',
  '007_documents',
  '008_endpoint_isolation',
  '009_event_source',
  '010_keyed_audit_chain',
  '011_audit_links',
];

/** Runs migrateToLatest from the build (`npm test` builds first) in a separate Node process; returns what it applied. */
async function migrateInChild(databaseUrl: string): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'countersign-migrate-'));
  try {
    const script = join(dir, 'migrate.mjs');
    const built = (file: string) => JSON.stringify(resolve(import.meta.dirname, '../dist/store', file));
    writeFileSync(
      script,
      [
        `import { migrateToLatest } from ${built('migrator.js')};`,
        `import { openDialect, parseDatabaseUrl } from ${built('open.js')};`,
        'const dialect = openDialect(parseDatabaseUrl(process.argv[2]));',
        'try { process.stdout.write(JSON.stringify(await migrateToLatest(dialect))); } finally { await dialect.close(); }',
      ].join('\n'),
    );
    const { stdout } = await run(process.execPath, [script, databaseUrl], {
      cwd: resolve(import.meta.dirname, '..'),
      timeout: 60_000,
    });
    return JSON.parse(stdout.trim().split('\n').pop() ?? '') as string[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.each(DIALECTS)('store contract on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    describe('migrations', () => {
      let database: TestDatabase;
      beforeEach(async () => {
        database = await dialect.create();
      });
      afterEach(async () => {
        await database.drop();
      });

      /** Two stores on one database, as the server and the CLI open it from two processes. */
      async function withServerAndCli(work: (server: Store, cli: Store) => Promise<void>): Promise<void> {
        const location = parseDatabaseUrl(database.url);
        const server = await openStore(openDialect(location));
        const cli = await openStore(openDialect(location));
        try {
          await work(server, cli);
        } finally {
          await cli.close();
          await server.close();
        }
      }

      it('sees a token revoked by another process on its next lookup, though it caches tokens', async () => {
        await withServerAndCli(async (server, cli) => {
          const account = await server.ensureAccount('acme', T0);
          const { id } = await server.createToken({
            accountId: account.id,
            lookup: 'cst_lookup0001',
            hash: 'ab'.repeat(32),
            scopes: ['admin'],
            expiresAt: null,
            now: T0,
          });
          expect((await server.findToken('cst_lookup0001'))?.revokedAt).toBeNull();
          expect((await server.findToken('cst_lookup0001'))?.revokedAt).toBeNull();
          expect(await cli.revokeToken(id, T0 + 1)).toBe(true);
          // SQLite sees the other connection's commit at once (data_version); PostgreSQL hears the
          // NOTIFY a moment after the commit.
          await expect
            .poll(async () => (await server.findToken('cst_lookup0001'))?.revokedAt, { timeout: 15_000 })
            .toBe(T0 + 1);
        });
      });

      it('answers cachedToken from memory only for a row findToken read, until any process changes tokens', async () => {
        await withServerAndCli(async (server, cli) => {
          const account = await server.ensureAccount('acme', T0);
          const input = { accountId: account.id, hash: 'ab'.repeat(32), scopes: ['admin'], expiresAt: null, now: T0 };
          const first = await server.createToken({ ...input, lookup: 'cst_lookup0001' });
          await server.createToken({ ...input, lookup: 'cst_lookup0002' });
          expect(server.cachedToken('cst_lookup0001')).toBeUndefined();
          const read = await server.findToken('cst_lookup0001');
          expect(read?.id).toBe(first.id);
          expect(server.cachedToken('cst_lookup0001')).toBe(read);
          expect(server.cachedToken('cst_unknown000')).toBeUndefined();

          // Another process revokes: the cached row stops being answered (at once on SQLite, once
          // the NOTIFY arrives on PostgreSQL), and findToken reads the revoked row.
          expect(await cli.revokeToken(first.id, T0 + 1)).toBe(true);
          await expect.poll(() => server.cachedToken('cst_lookup0001'), { timeout: 15_000 }).toBeUndefined();
          expect((await server.findToken('cst_lookup0001'))?.revokedAt).toBe(T0 + 1);

          // This process revokes: its own cache is dropped before revokeToken returns.
          const second = await server.findToken('cst_lookup0002');
          expect(server.cachedToken('cst_lookup0002')).toBe(second);
          await server.revokeToken(second?.id ?? '', T0 + 2);
          expect(server.cachedToken('cst_lookup0002')).toBeUndefined();
        });
      });

      it('applies the schema once; opening the same database again migrates nothing and keeps the data', async () => {
        const location = parseDatabaseUrl(database.url);
        const direct = openDialect(location);
        try {
          expect(await migrateToLatest(direct)).toEqual(MIGRATIONS);
          expect(await migrateToLatest(direct)).toEqual([]);
        } finally {
          await direct.close();
        }
        const first = await openStore(openDialect(location));
        await first.ensureAccount('acme', T0);
        await first.close();
        const second = await openStore(openDialect(location));
        try {
          expect(await second.countAccounts()).toBe(1);
          expect((await second.ensureAccount('acme', T0 + HOUR)).createdAt).toBe(T0);
        } finally {
          await second.close();
        }
      });

      it('lets two stores in one process migrate the same fresh database at once (PostgreSQL: one pool each)', async (context) => {
        // SQLite keeps one connection per process by design; several processes are tested below.
        if (dialect.name === 'sqlite') context.skip();
        const location = parseDatabaseUrl(database.url);
        const stores = await Promise.all([openStore(openDialect(location)), openStore(openDialect(location))]);
        try {
          const [a, b] = stores;
          if (!a || !b) throw new Error('a store did not open');
          await a.ensureAccount('acme', T0);
          expect(await b.countAccounts()).toBe(1);
          const check = openDialect(location);
          try {
            const rows = await sql<{ name: string }>`select name from countersign_migrations`.execute(check.db);
            expect(rows.rows.map((r) => r.name)).toEqual(MIGRATIONS);
          } finally {
            await check.close();
          }
        } finally {
          await Promise.all(stores.map((s) => s.close()));
        }
      });

      it('lets three processes migrate the same fresh database at once: exactly one applies the migration', async () => {
        const runs = await Promise.all([1, 2, 3].map(() => migrateInChild(database.url)));
        expect(runs.filter((applied) => applied.length > 0)).toEqual([MIGRATIONS]);
        expect(runs.filter((applied) => applied.length === 0)).toHaveLength(2);
        const store = await openStore(openDialect(parseDatabaseUrl(database.url)));
        try {
          await store.ensureAccount('acme', T0);
          expect(await store.countAccounts()).toBe(1);
        } finally {
          await store.close();
        }
      }, 120_000);
    });

    describe('with a store', () => {
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

      async function publish(
        request: Partial<PublishRequest> & { accountId: string },
        now: number,
      ): Promise<{ event: EventRecord; replayed: boolean }> {
        const [published] = await store.publishEvents(
          [{ type: 'document.signed', dataJson: '{"document_id":"doc_1"}', occurredAt: now, ...request }],
          now,
        );
        if (!published?.ok) throw new Error(`publish refused: ${JSON.stringify(published)}`);
        return published;
      }

      async function deliveriesOf(accountId: string, eventId: string): Promise<Delivery[]> {
        return (await store.listDeliveries(accountId, { limit: 100, eventId })).items;
      }

      async function delivery(id: string): Promise<Delivery> {
        const found = await store.getDelivery(acme.id, id);
        if (!found) throw new Error(`delivery ${id} not found`);
        return found;
      }

      async function subscription(id: string): Promise<Subscription> {
        const found = await store.getSubscription(acme.id, id);
        if (!found) throw new Error(`subscription ${id} not found`);
        return found;
      }

      /** Publishes one event to a fresh subscription and takes its delivery through `outcome`. */
      async function finishedDelivery(outcome: 'delivered' | 'failed', now: number) {
        const sub = await addSubscription(acme.id, { target_url: `https://your-app.com/${outcome}/${now}` });
        const { event } = await publish({ accountId: acme.id, onlySubscriptionId: sub.id }, now);
        const [claimed] = await store.claimDueDeliveries('worker-a', 10, now, LEASE_MS);
        if (!claimed || claimed.eventId !== event.id) throw new Error('expected to claim the new delivery');
        await store.recordAttempts('worker-a', [result(claimed, outcome, now + 1)], now + 1, SETTINGS);
        return { sub, event, claimed };
      }

      it('answers ping and names its dialect', async () => {
        await store.ping();
        expect(store.dialect).toBe(dialect.name);
      });

      describe('accounts', () => {
        it('ensureAccount returns the same account for the same name and keeps its first created_at', async () => {
          const again = await store.ensureAccount('acme', T0 + HOUR);
          expect(again).toEqual({ id: acme.id, name: 'acme', createdAt: T0 });
          expect(other.id).not.toBe(acme.id);
          expect(await store.countAccounts()).toBe(2);
          await store.ensureAccount('initech', T0);
          expect(await store.countAccounts()).toBe(3);
        });
      });

      describe('tokens', () => {
        async function createToken(accountId: string, lookup: string, expiresAt: number | null = null) {
          return store.createToken({
            accountId,
            lookup,
            hash: `hash-of-${lookup}`,
            scopes: ['read', 'write'],
            expiresAt,
            now: T0,
          });
        }

        it('finds a token by its lookup prefix, with its account name and scopes', async () => {
          const { id } = await createToken(acme.id, 'cst_aaaaaaaaaaaa', T0 + HOUR);
          expect(await store.findToken('cst_aaaaaaaaaaaa')).toEqual({
            id,
            accountId: acme.id,
            accountName: 'acme',
            scopes: ['read', 'write'],
            hash: 'hash-of-cst_aaaaaaaaaaaa',
            createdAt: T0,
            expiresAt: T0 + HOUR,
            revokedAt: null,
            lastUsedAt: null,
            kind: 'api',
          });
          expect(await store.findToken('cst_unknown000')).toBeUndefined();
        });

        it('lists every account’s tokens in creation order', async () => {
          const a = await createToken(acme.id, 'cst_aaaaaaaaaaaa');
          const b = await createToken(other.id, 'cst_bbbbbbbbbbbb');
          const listed = await store.listTokens();
          expect(listed.map((t) => [t.id, t.accountName])).toEqual([
            [a.id, 'acme'],
            [b.id, 'globex'],
          ]);
        });

        it('revokes a token once: the second revoke returns false and keeps the first revoked_at', async () => {
          const { id } = await createToken(acme.id, 'cst_aaaaaaaaaaaa');
          expect(await store.revokeToken(id, T0 + SECOND)).toBe(true);
          expect(await store.revokeToken(id, T0 + 2 * SECOND)).toBe(false);
          expect((await store.findToken('cst_aaaaaaaaaaaa'))?.revokedAt).toBe(T0 + SECOND);
          expect(await store.revokeToken(newId('tok'), T0)).toBe(false);
        });

        it('makes portal tokens, and revokes one only for its own account and only if it is a portal token', async () => {
          const api = await createToken(acme.id, 'cst_aaaaaaaaaaaa');
          const portal = await store.createToken({
            accountId: acme.id,
            lookup: 'cst_pppppppppppp',
            hash: 'hash-of-portal',
            scopes: ['read', 'write'],
            expiresAt: T0 + HOUR,
            now: T0,
            kind: 'portal',
          });
          expect((await store.findToken('cst_aaaaaaaaaaaa'))?.kind).toBe('api');
          const found = await store.findToken('cst_pppppppppppp');
          expect(found).toMatchObject({ id: portal.id, kind: 'portal', scopes: ['read', 'write'] });
          expect(store.cachedToken('cst_pppppppppppp')).toBe(found);

          expect(await store.revokePortalToken(acme.id, api.id, T0 + 1)).toBe(false);
          expect(await store.revokePortalToken(other.id, portal.id, T0 + 1)).toBe(false);
          expect(await store.revokePortalToken(acme.id, newId('tok'), T0 + 1)).toBe(false);
          expect((await store.findToken('cst_aaaaaaaaaaaa'))?.revokedAt).toBeNull();
          expect(await store.revokePortalToken(acme.id, portal.id, T0 + 2)).toBe(true);
          // The cached row goes before the call returns: the next request is refused.
          expect(store.cachedToken('cst_pppppppppppp')).toBeUndefined();
          expect((await store.findToken('cst_pppppppppppp'))?.revokedAt).toBe(T0 + 2);
          expect(await store.revokePortalToken(acme.id, portal.id, T0 + 3)).toBe(false);
          expect((await store.listTokens()).map((t) => [t.id, t.kind])).toEqual([
            [api.id, 'api'],
            [portal.id, 'portal'],
          ]);
        });

        it('records when a token was last used', async () => {
          const { id } = await createToken(acme.id, 'cst_aaaaaaaaaaaa');
          await store.touchToken(id, T0 + HOUR);
          expect((await store.findToken('cst_aaaaaaaaaaaa'))?.lastUsedAt).toBe(T0 + HOUR);
          await store.touchToken(id, T0 + 2 * HOUR);
          expect((await store.findToken('cst_aaaaaaaaaaaa'))?.lastUsedAt).toBe(T0 + 2 * HOUR);
        });
      });

      describe('callbacks', () => {
        it('has no callback until one is put, then returns it with created_at set', async () => {
          expect(await store.getCallback(acme.id)).toBeUndefined();
          await store.putCallback(callbackRow(acme.id));
          expect(await store.getCallback(acme.id)).toEqual({ ...callbackRow(acme.id), ...UNSIGNED, created_at: T0 });
          expect(await store.getCallback(other.id)).toBeUndefined();
        });

        it('replaces the settings on a second put but keeps created_at', async () => {
          await store.putCallback(callbackRow(acme.id));
          const replacement = callbackRow(acme.id, {
            url: 'https://your-app.com/other-callback',
            auth_type: 'Basic',
            username: 'user',
            password_sealed: 'sealed-password',
            bearer_token_sealed: null,
            updated_at: T0 + HOUR,
          });
          await store.putCallback(replacement);
          expect(await store.getCallback(acme.id)).toEqual({ ...replacement, ...UNSIGNED, created_at: T0 });
        });

        it('stores an empty url, which marks the callback disabled', async () => {
          await store.putCallback(callbackRow(acme.id));
          await store.putCallback(callbackRow(acme.id, { url: '', auth_type: 'None', bearer_token_sealed: null }));
          expect((await store.getCallback(acme.id))?.url).toBe('');
        });
      });

      describe('subscriptions', () => {
        it('returns a created subscription exactly as it was stored', async () => {
          const sub = await addSubscription(acme.id, {
            retired_secrets: retired('old', T0 + HOUR),
          });
          expect(await store.getSubscription(acme.id, sub.id)).toEqual(sub);
          expect(await store.getSubscription(acme.id, newId('sub'))).toBeUndefined();
        });

        it('lists newest first and pages through every subscription once, without gaps', async () => {
          const created: Subscription[] = [];
          for (let i = 0; i < 7; i++) {
            created.push(await addSubscription(acme.id, { target_url: `https://your-app.com/hook/${i}` }));
          }
          await addSubscription(other.id);
          const pages = await allPages((cursor) => store.listSubscriptions(acme.id, { limit: 3, cursor }));
          expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
          expect(pages.flat().map((s) => s.id)).toEqual(ids(created).reverse());
        });

        it('ends on an empty next cursor when the last page is exactly full', async () => {
          for (let i = 0; i < 4; i++) await addSubscription(acme.id, { target_url: `https://your-app.com/hook/${i}` });
          const pages = await allPages((cursor) => store.listSubscriptions(acme.id, { limit: 2, cursor }));
          expect(pages.map((p) => p.length)).toEqual([2, 2]);
        });

        it('filters the list by event_type and by status', async () => {
          const signed = await addSubscription(acme.id, { event_types: 'document.signed' });
          const sent = await addSubscription(acme.id, { event_types: 'document.sent' });
          const paused = await addSubscription(acme.id, {
            target_url: 'https://your-app.com/paused',
            event_types: 'document.sent',
            status: 'paused',
          });
          const bySent = await store.listSubscriptions(acme.id, { limit: 10, eventType: 'document.sent' });
          expect(ids(bySent.items)).toEqual([paused.id, sent.id]);
          const byPaused = await store.listSubscriptions(acme.id, { limit: 10, status: 'paused' });
          expect(ids(byPaused.items)).toEqual([paused.id]);
          const both = await store.listSubscriptions(acme.id, {
            limit: 10,
            eventType: 'document.signed',
            status: 'active',
          });
          expect(ids(both.items)).toEqual([signed.id]);
        });

        it('pages through a filtered list without mixing in other subscriptions', async () => {
          const wanted: string[] = [];
          for (let i = 0; i < 5; i++) {
            wanted.push((await addSubscription(acme.id, { target_url: `https://your-app.com/s/${i}` })).id);
            await addSubscription(acme.id, { target_url: `https://your-app.com/s/${i}`, event_types: 'document.sent' });
          }
          const pages = await allPages((cursor) =>
            store.listSubscriptions(acme.id, { limit: 2, cursor, eventType: 'document.signed' }),
          );
          expect(pages.flat().map((s) => s.id)).toEqual(wanted.reverse());
        });

        it('hides another account’s subscription from get, list, update and delete', async () => {
          const theirs = await addSubscription(other.id);
          expect(await store.getSubscription(acme.id, theirs.id)).toBeUndefined();
          expect((await store.listSubscriptions(acme.id, { limit: 10 })).items).toEqual([]);
          expect(
            await store.updateSubscription(acme.id, theirs.id, { targetUrl: 'https://evil.example/' }, T0),
          ).toBeUndefined();
          expect(await store.deleteSubscription(acme.id, theirs.id, T0)).toBe(false);
          expect(await store.getSubscription(other.id, theirs.id)).toEqual(theirs);
        });

        it('throws subscription_exists when the same target_url and event_type already exist', async () => {
          const first = await addSubscription(acme.id);
          const duplicate = subscriptionRow(acme.id);
          const error = await store.createSubscription(duplicate).catch((err: unknown) => err);
          expect(error).toBeInstanceOf(CountersignError);
          expect(error).toMatchObject({ code: 'subscription_exists', statusCode: 409 });
          expect(ids((await store.listSubscriptions(acme.id, { limit: 10 })).items)).toEqual([first.id]);
        });

        it('allows the same target_url with another event_type, and the same pair in another account', async () => {
          await addSubscription(acme.id);
          await addSubscription(acme.id, { event_types: 'document.sent' });
          await addSubscription(other.id);
          expect((await store.listSubscriptions(acme.id, { limit: 10 })).items).toHaveLength(2);
          expect((await store.listSubscriptions(other.id, { limit: 10 })).items).toHaveLength(1);
        });

        it('allows the same triple again once the first subscription is deleted', async () => {
          const first = await addSubscription(acme.id);
          expect(await store.deleteSubscription(acme.id, first.id, T0 + SECOND)).toBe(true);
          expect(await store.getSubscription(acme.id, first.id)).toBeUndefined();
          expect(await store.deleteSubscription(acme.id, first.id, T0 + SECOND)).toBe(false);
          const second = await addSubscription(acme.id);
          expect(ids((await store.listSubscriptions(acme.id, { limit: 10 })).items)).toEqual([second.id]);
        });

        it('applies a patch and returns the updated row', async () => {
          const sub = await addSubscription(acme.id);
          const updated = await store.updateSubscription(
            acme.id,
            sub.id,
            { targetUrl: 'https://your-app.com/moved', secretTokenSealed: null },
            T0 + HOUR,
          );
          const expected = {
            ...sub,
            target_url: 'https://your-app.com/moved',
            secret_token_sealed: null,
            updated_at: T0 + HOUR,
          };
          expect(updated).toEqual(expected);
          expect(await store.getSubscription(acme.id, sub.id)).toEqual(expected);
        });

        it('rotates the signing secret, keeping the previous one until the given time', async () => {
          const sub = await addSubscription(acme.id);
          const rotated = await store.rotateSigningSecret(acme.id, sub.id, 'sealed-new', T0 + HOUR, T0);
          const expected = {
            ...sub,
            signing_secret_sealed: 'sealed-new',
            retired_secrets: retired('sealed-signing-secret', T0 + HOUR),
            updated_at: T0,
          };
          expect(rotated).toEqual(expected);
          expect(await store.getSubscription(acme.id, sub.id)).toEqual(expected);
          await publish({ accountId: acme.id }, T0);
          const [claimed] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          expect(claimed?.target).toMatchObject({ signingSecretsSealed: ['sealed-new', 'sealed-signing-secret'] });
        });

        it('drops the replaced signing secret at once when rotating with no overlap', async () => {
          const sub = await addSubscription(acme.id, {
            retired_secrets: retired('sealed-older', T0 + HOUR),
          });
          const rotated = await store.rotateSigningSecret(acme.id, sub.id, 'sealed-new', T0, T0);
          // The older secret keeps its own expiry; the one just replaced stops at once.
          expect(rotated).toMatchObject({
            signing_secret_sealed: 'sealed-new',
            retired_secrets: retired('sealed-older', T0 + HOUR),
          });
          expect(await store.rotateSigningSecret(other.id, sub.id, 'sealed-evil', T0 + HOUR, T0)).toBeUndefined();
          expect((await subscription(sub.id)).signing_secret_sealed).toBe('sealed-new');
        });

        it('throws subscription_exists when an update moves onto an existing target_url, and changes nothing', async () => {
          await addSubscription(acme.id, { target_url: 'https://your-app.com/a' });
          const b = await addSubscription(acme.id, { target_url: 'https://your-app.com/b' });
          await expect(
            store.updateSubscription(acme.id, b.id, { targetUrl: 'https://your-app.com/a' }, T0 + SECOND),
          ).rejects.toMatchObject({ code: 'subscription_exists' });
          expect(await store.getSubscription(acme.id, b.id)).toEqual(b);
        });
      });

      describe('resealing secrets', () => {
        it('re-seals every secret at rest and leaves empty ones empty', async () => {
          await store.putCallback(callbackRow(acme.id, { auth_type: 'Basic', username: 'u', password_sealed: 'pw' }));
          const withAll = await addSubscription(acme.id, {
            retired_secrets: retired('sealed-old', T0 + HOUR),
          });
          const bare = await addSubscription(acme.id, {
            target_url: 'https://your-app.com/bare',
            secret_token_sealed: null,
          });
          // callback: password + bearer; withAll: token + signing + previous; bare: signing.
          expect(await store.resealSecrets((sealed) => `v2:${sealed}`)).toBe(6);
          expect(await store.getCallback(acme.id)).toMatchObject({
            username: 'u',
            password_sealed: 'v2:pw',
            bearer_token_sealed: 'v2:sealed-bearer',
          });
          expect(await subscription(withAll.id)).toMatchObject({
            secret_token_sealed: 'v2:sealed-secret-token',
            signing_secret_sealed: 'v2:sealed-signing-secret',
            retired_secrets: retired('v2:sealed-old', T0 + HOUR),
          });
          expect(await subscription(bare.id)).toMatchObject({
            secret_token_sealed: null,
            signing_secret_sealed: 'v2:sealed-signing-secret',
            retired_secrets: '[]',
          });
        });

        it('changes nothing when re-sealing fails part-way', async () => {
          await store.putCallback(callbackRow(acme.id));
          const sub = await addSubscription(acme.id);
          let calls = 0;
          const failing = (sealed: string) => {
            calls++;
            if (calls === 3) throw new Error('wrong key');
            return `v2:${sealed}`;
          };
          await expect(store.resealSecrets(failing)).rejects.toThrow('wrong key');
          expect((await store.getCallback(acme.id))?.bearer_token_sealed).toBe('sealed-bearer');
          expect(await subscription(sub.id)).toEqual(sub);
        });
      });

      describe('publishEvents', () => {
        it('fans out to the account’s active and paused subscriptions of that type and its enabled callback', async () => {
          const active1 = await addSubscription(acme.id, { target_url: 'https://your-app.com/1' });
          const active2 = await addSubscription(acme.id, { target_url: 'https://your-app.com/2' });
          const paused = await addSubscription(acme.id, { target_url: 'https://your-app.com/3', status: 'paused' });
          await addSubscription(acme.id, { target_url: 'https://your-app.com/4', status: 'disabled' });
          await addSubscription(acme.id, { target_url: 'https://your-app.com/5', event_types: 'document.sent' });
          const deleted = await addSubscription(acme.id, { target_url: 'https://your-app.com/6' });
          await store.deleteSubscription(acme.id, deleted.id, T0);
          await addSubscription(other.id);
          await store.putCallback(callbackRow(acme.id));
          await store.putCallback(callbackRow(other.id));

          const { event, replayed } = await publish({ accountId: acme.id, occurredAt: T0 - SECOND }, T0);
          expect(replayed).toBe(false);
          expect(event).toMatchObject({
            accountId: acme.id,
            type: 'document.signed',
            dataJson: '{"document_id":"doc_1"}',
            occurredAt: T0 - SECOND,
            createdAt: T0,
            deliveryCount: 4,
          });
          const made = await deliveriesOf(acme.id, event.id);
          const bySubscription = new Map(made.map((d) => [d.subscription_id, d]));
          expect(made).toHaveLength(4);
          expect(bySubscription.get(active1.id)?.status).toBe('pending');
          expect(bySubscription.get(active2.id)?.status).toBe('pending');
          expect(bySubscription.get(paused.id)?.status).toBe('held');
          expect(bySubscription.get(null)?.status).toBe('pending');
          for (const d of made) {
            expect(d).toMatchObject({ attempt_count: 0, next_attempt_at: T0, created_at: T0, lease_owner: null });
          }
          expect((await store.listDeliveries(other.id, { limit: 10 })).items).toEqual([]);
          expect(await store.getEvent(acme.id, event.id)).toEqual(event);
        });

        it('makes no callback delivery when the callback is disabled (empty url)', async () => {
          await addSubscription(acme.id);
          await store.putCallback(callbackRow(acme.id, { url: '' }));
          const { event } = await publish({ accountId: acme.id }, T0);
          expect(event.deliveryCount).toBe(1);
          const made = await deliveriesOf(acme.id, event.id);
          expect(made.map((d) => d.subscription_id === null)).toEqual([false]);
        });

        it('fans out to what the tables hold at each publish, whatever changed in between', async () => {
          // SQLite keeps fan-out rows between publishes (FanOutCache); every kind of change must
          // show in the very next publish.
          const claim = { owner: 'worker-a', leaseMs: LEASE_MS, limit: 100 };
          const targets = async (now: number) => {
            const request = { accountId: acme.id, type: 'document.signed', dataJson: '{}', occurredAt: now };
            const { claimed, results } = await store.publishAndClaim([request], now, claim);
            const [published] = results;
            if (!published?.ok) throw new Error('publish refused');
            const made = await deliveriesOf(acme.id, published.event.id);
            return made
              .map((d) => {
                const sent = claimed.find((c) => c.id === d.id);
                const target = sent?.target;
                const secret = target?.kind === 'subscription' ? target.signingSecretsSealed.join('+') : undefined;
                return `${d.subscription_id ?? 'callback'}:${d.status}${secret ? `:${secret}` : ''}${target?.url ? `:${target.url}` : ''}`;
              })
              .sort();
          };
          const a = await addSubscription(acme.id, { target_url: 'https://your-app.com/a' });
          const url = 'https://your-app.com/a';
          expect(await targets(T0)).toEqual([`${a.id}:sending:sealed-signing-secret:${url}`]);

          const b = await addSubscription(acme.id, { target_url: 'https://your-app.com/b' });
          expect(await targets(T0 + 1)).toHaveLength(2);

          await store.updateSubscription(acme.id, a.id, { status: 'paused' }, T0 + 2);
          expect(await targets(T0 + 3)).toEqual(
            [`${a.id}:held`, `${b.id}:sending:sealed-signing-secret:https://your-app.com/b`].sort(),
          );

          await store.updateSubscription(acme.id, b.id, { targetUrl: 'https://your-app.com/b2' }, T0 + 4);
          await store.rotateSigningSecret(acme.id, b.id, 'sealed-new', T0 + HOUR, T0 + 4);
          expect(await targets(T0 + 5)).toEqual(
            [`${a.id}:held`, `${b.id}:sending:sealed-new+sealed-signing-secret:https://your-app.com/b2`].sort(),
          );
          // The rotated-out secret stops signing when it expires, with no change to the tables.
          expect(await targets(T0 + HOUR + 1)).toEqual(
            [`${a.id}:held`, `${b.id}:sending:sealed-new:https://your-app.com/b2`].sort(),
          );

          await store.putCallback(callbackRow(acme.id));
          expect(await targets(T0 + HOUR + 2)).toEqual(
            [
              `${a.id}:held`,
              `${b.id}:sending:sealed-new:https://your-app.com/b2`,
              'callback:sending:https://your-app.com/callback',
            ].sort(),
          );
          await store.putCallback(callbackRow(acme.id, { url: '' }));
          await store.deleteSubscription(acme.id, b.id, T0 + HOUR + 3);
          expect(await targets(T0 + HOUR + 4)).toEqual([`${a.id}:held`]);

          // The health bookkeeping of an attempt result changes subscriptions too: a 410 disables.
          await store.updateSubscription(acme.id, a.id, { status: 'active' }, T0 + HOUR + 5);
          const c = await addSubscription(acme.id, { target_url: 'https://your-app.com/c' });
          const [claimed] = await store.claimDueDeliveries('worker-b', 100, T0 + HOUR + 6, LEASE_MS);
          if (!claimed || claimed.subscriptionId !== a.id) throw new Error('expected a’s released delivery');
          await store.recordAttempts('worker-b', [result(claimed, 'gone', T0 + HOUR + 7)], T0 + HOUR + 7, SETTINGS);
          expect((await subscription(a.id)).status).toBe('disabled');
          expect(await targets(T0 + HOUR + 8)).toEqual([
            `${c.id}:sending:sealed-signing-secret:https://your-app.com/c`,
          ]);
        });

        it('fans out each request of a batch once when some of its pairs were read by an earlier publish', async () => {
          await addSubscription(acme.id, { event_types: 'document.signed' });
          await addSubscription(acme.id, { event_types: 'document.sent' });
          await addSubscription(other.id, { event_types: 'document.signed' });
          await addSubscription(other.id, { event_types: 'document.sent' });
          await publish({ accountId: acme.id, type: 'document.signed' }, T0);
          await publish({ accountId: other.id, type: 'document.sent' }, T0);
          // (acme, sent) and (other, signed) are new; the read for them spans the cached pairs too.
          const batch = await store.publishEvents(
            [
              [acme.id, 'document.signed'],
              [acme.id, 'document.sent'],
              [other.id, 'document.signed'],
              [other.id, 'document.sent'],
            ].map(([accountId, type]) => ({
              accountId: accountId as string,
              type: type as string,
              dataJson: '{}',
              occurredAt: T0,
            })),
            T0 + 1,
          );
          expect(batch.map((r) => (r.ok ? r.event.deliveryCount : -1))).toEqual([1, 1, 1, 1]);
        });

        it('stores an event with no deliveries when nothing matches', async () => {
          await addSubscription(acme.id, { event_types: 'document.sent' });
          const { event } = await publish({ accountId: acme.id }, T0);
          expect(event.deliveryCount).toBe(0);
          expect(await deliveriesOf(acme.id, event.id)).toEqual([]);
          expect(await store.nextDueAt()).toBeUndefined();
        });

        it('publishes a batch of many requests for several accounts in one call, answering each in order', async () => {
          await addSubscription(acme.id, { event_types: 'document.signed' });
          await addSubscription(acme.id, { event_types: 'document.sent' });
          await addSubscription(other.id, { event_types: 'document.signed' });
          await store.putCallback(callbackRow(other.id));
          const requests: PublishRequest[] = [];
          for (let i = 0; i < 120; i++) {
            requests.push({
              accountId: i % 3 === 0 ? other.id : acme.id,
              type: i % 2 === 0 ? 'document.signed' : 'document.declined',
              dataJson: JSON.stringify({ n: i }),
              occurredAt: T0 + i,
            });
          }
          const results = await store.publishEvents(requests, T0);
          expect(results).toHaveLength(120);
          const events = results.map((r, i) => {
            if (!r.ok) throw new Error(`request ${i} refused`);
            expect(r.replayed).toBe(false);
            expect(r.event.dataJson).toBe(JSON.stringify({ n: i }));
            const request = requests[i] as PublishRequest;
            const subs = request.type === 'document.signed' ? 1 : 0;
            const callback = request.accountId === other.id ? 1 : 0;
            expect(r.event.deliveryCount).toBe(subs + callback);
            return r.event;
          });
          expect(new Set(ids(events)).size).toBe(120);
          const acmeEvents = await allPages((cursor) => store.listEvents(acme.id, { limit: 50, cursor }));
          expect(acmeEvents.flat()).toHaveLength(80);
          const otherDeliveries = await allPages((cursor) => store.listDeliveries(other.id, { limit: 50, cursor }));
          const expected = events.filter((e) => e.accountId === other.id).reduce((n, e) => n + e.deliveryCount, 0);
          expect(otherDeliveries.flat()).toHaveLength(expected);
        });

        it('replays a reused idempotency key with the same body: same event, no new deliveries', async () => {
          await addSubscription(acme.id);
          const first = await publish({ accountId: acme.id, idempotencyKey: 'key-1', requestHash: 'h1' }, T0);
          const again = await publish(
            { accountId: acme.id, idempotencyKey: 'key-1', requestHash: 'h1', dataJson: '{}' },
            T0 + HOUR,
          );
          expect(again.replayed).toBe(true);
          expect(again.event).toEqual(first.event);
          expect((await store.listDeliveries(acme.id, { limit: 10 })).items).toHaveLength(1);
          expect((await store.listEvents(acme.id, { limit: 10 })).items).toHaveLength(1);
        });

        it('refuses a reused idempotency key with another body', async () => {
          await publish({ accountId: acme.id, idempotencyKey: 'key-1', requestHash: 'h1' }, T0);
          const [refused] = await store.publishEvents(
            [
              {
                accountId: acme.id,
                type: 'document.signed',
                dataJson: '{}',
                occurredAt: T0,
                idempotencyKey: 'key-1',
                requestHash: 'h2',
              },
            ],
            T0 + SECOND,
          );
          expect(refused).toEqual({ ok: false, reason: 'idempotency_key_reused' });
          expect((await store.listEvents(acme.id, { limit: 10 })).items).toHaveLength(1);
        });

        it('answers the same key twice inside one batch with one event, and refuses it with another body', async () => {
          await addSubscription(acme.id);
          const base = { accountId: acme.id, type: 'document.signed', dataJson: '{}', occurredAt: T0 };
          const results = await store.publishEvents(
            [
              { ...base, idempotencyKey: 'k', requestHash: 'h1' },
              { ...base, idempotencyKey: 'k', requestHash: 'h1' },
              { ...base, idempotencyKey: 'k', requestHash: 'h2' },
            ],
            T0,
          );
          const [first, second, third] = results;
          if (!first?.ok || !second?.ok) throw new Error('expected the first two to be accepted');
          expect(first.replayed).toBe(false);
          expect(second.replayed).toBe(true);
          expect(second.event.id).toBe(first.event.id);
          expect(third).toEqual({ ok: false, reason: 'idempotency_key_reused' });
          expect((await store.listEvents(acme.id, { limit: 10 })).items).toHaveLength(1);
          expect((await store.listDeliveries(acme.id, { limit: 10 })).items).toHaveLength(1);
        });

        it('writes every row of a fan-out and a keyed batch of any size, none twice', async () => {
          // Multi-row inserts go in chunks on SQLite (256, 32, 8 and 4 rows for 300): no row may be
          // lost or doubled at a chunk's edge, and a keyed batch's ids come back for the rows written.
          const subscriptions: Subscription[] = [];
          for (let i = 0; i < 300; i++) {
            subscriptions.push(await addSubscription(acme.id, { target_url: `https://your-app.com/fan/${i}` }));
          }
          const { event } = await publish({ accountId: acme.id }, T0);
          expect(event.deliveryCount).toBe(300);

          const base = { accountId: acme.id, type: 'document.sent', dataJson: '{}', occurredAt: T0 };
          await publish({ ...base, idempotencyKey: 'batch-7', requestHash: 'h' }, T0);
          const requests = Array.from({ length: 301 }, (_, i) => ({
            ...base,
            idempotencyKey: `batch-${i}`,
            requestHash: 'h',
          }));
          const results = await store.publishEvents(requests, T0 + 1);
          expect(results.filter((r) => r.ok && r.replayed)).toHaveLength(1);
          expect(results.filter((r) => r.ok && !r.replayed)).toHaveLength(300);

          const inspector = openDialect(parseDatabaseUrl(database.url));
          try {
            const counts = await sql<{ events: number | string; deliveries: number | string; pairs: number | string }>`
              select (select count(*) from events where account_id = ${acme.id}) as events,
                     (select count(*) from deliveries where event_id = ${event.id}) as deliveries,
                     (select count(distinct subscription_id) from deliveries where event_id = ${event.id}) as pairs`.execute(
              inspector.db,
            );
            expect(counts.rows.map((r) => [Number(r.events), Number(r.deliveries), Number(r.pairs)])).toEqual([
              [302, 300, 300],
            ]);
          } finally {
            await inspector.close();
          }
        });

        it('scopes idempotency keys to the account', async () => {
          const mine = await publish({ accountId: acme.id, idempotencyKey: 'k', requestHash: 'h' }, T0);
          const theirs = await publish({ accountId: other.id, idempotencyKey: 'k', requestHash: 'h' }, T0);
          expect(theirs.replayed).toBe(false);
          expect(theirs.event.id).not.toBe(mine.event.id);
        });

        it('keeps a key for 24 hours, then lets it make a new event', async () => {
          await addSubscription(acme.id);
          const first = await publish({ accountId: acme.id, idempotencyKey: 'k', requestHash: 'h' }, T0);
          const within = await publish({ accountId: acme.id, idempotencyKey: 'k', requestHash: 'h' }, T0 + 23 * HOUR);
          expect(within).toMatchObject({ replayed: true, event: { id: first.event.id } });
          const later = await publish(
            { accountId: acme.id, idempotencyKey: 'k', requestHash: 'other' },
            T0 + 25 * HOUR,
          );
          expect(later.replayed).toBe(false);
          expect(later.event.id).not.toBe(first.event.id);
          expect(later.event.deliveryCount).toBe(1);
          expect(await store.getEvent(acme.id, first.event.id)).toEqual(first.event);
          const replay = await publish(
            { accountId: acme.id, idempotencyKey: 'k', requestHash: 'other' },
            T0 + 26 * HOUR,
          );
          expect(replay).toMatchObject({ replayed: true, event: { id: later.event.id } });
        });

        it('delivers to one subscription only with onlySubscriptionId, even a paused one, and not to the callback', async () => {
          const target = await addSubscription(acme.id, { target_url: 'https://your-app.com/t', status: 'paused' });
          await addSubscription(acme.id, { target_url: 'https://your-app.com/u' });
          await store.putCallback(callbackRow(acme.id));
          const { event } = await publish({ accountId: acme.id, onlySubscriptionId: target.id }, T0);
          expect(event.deliveryCount).toBe(1);
          const made = await deliveriesOf(acme.id, event.id);
          expect(made.map((d) => [d.subscription_id, d.status])).toEqual([[target.id, 'pending']]);
        });

        it('makes no delivery for onlySubscriptionId of a deleted subscription or another account’s', async () => {
          const deleted = await addSubscription(acme.id);
          await store.deleteSubscription(acme.id, deleted.id, T0);
          const theirs = await addSubscription(other.id);
          const gone = await publish({ accountId: acme.id, onlySubscriptionId: deleted.id }, T0);
          expect(gone.event.deliveryCount).toBe(0);
          const foreign = await publish({ accountId: acme.id, onlySubscriptionId: theirs.id }, T0);
          expect(foreign.event.deliveryCount).toBe(0);
          expect(await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS)).toEqual([]);
        });

        it('tells onDue listeners when new deliveries are due, until they unsubscribe', async () => {
          await addSubscription(acme.id);
          let calls = 0;
          const stop = store.onDue(() => {
            calls++;
          });
          await publish({ accountId: acme.id }, T0);
          expect(calls).toBeGreaterThan(0);
          stop();
          const before = calls;
          await publish({ accountId: acme.id }, T0);
          expect(calls).toBe(before);
        });
      });

      describe('several stores on one database', () => {
        let second: Store;
        beforeEach(async () => {
          second = await openStore(openDialect(parseDatabaseUrl(database.url)));
        });
        afterEach(async () => {
          await second.close();
        });

        it('never hands the same delivery to two stores claiming at once', async () => {
          await addSubscription(acme.id, { target_url: 'https://your-app.com/a' });
          await addSubscription(acme.id, { target_url: 'https://your-app.com/b' });
          for (let i = 0; i < 20; i++) await publish({ accountId: acme.id }, T0);
          const seen: string[] = [];
          for (let round = 0; round < 10; round++) {
            const [a, b] = await Promise.all([
              store.claimDueDeliveries('worker-a', 7, T0, LEASE_MS),
              second.claimDueDeliveries('worker-b', 7, T0, LEASE_MS),
            ]);
            seen.push(...ids(a), ...ids(b));
            if (a.length + b.length === 0) break;
          }
          expect(seen).toHaveLength(40);
          expect(new Set(seen).size).toBe(40);
        });

        it('fans out to subscriptions another store or a hand-written statement changed since the last publish', async () => {
          const first = await addSubscription(acme.id, { target_url: 'https://your-app.com/1' });
          expect((await publish({ accountId: acme.id }, T0)).event.deliveryCount).toBe(1);
          const added = subscriptionRow(acme.id, { target_url: 'https://your-app.com/2' });
          await second.createSubscription(added);
          const { event } = await publish({ accountId: acme.id }, T0 + 1);
          expect((await deliveriesOf(acme.id, event.id)).map((d) => d.subscription_id).sort()).toEqual(
            [first.id, added.id].sort(),
          );
          await second.deleteSubscription(acme.id, first.id, T0 + 2);
          const after = await publish({ accountId: acme.id }, T0 + 3);
          expect((await deliveriesOf(acme.id, after.event.id)).map((d) => d.subscription_id)).toEqual([added.id]);

          const direct = openDialect(parseDatabaseUrl(database.url));
          try {
            await sql`update subscriptions set status = 'paused' where id = ${added.id}`.execute(direct.db);
          } finally {
            await direct.close();
          }
          const paused = await publish({ accountId: acme.id }, T0 + 4);
          expect((await deliveriesOf(acme.id, paused.event.id)).map((d) => d.status)).toEqual(['held']);
        });

        it('answers one idempotency key published by two stores at once with one event (PostgreSQL)', async (context) => {
          // SQLite has one writer connection per process by design; its writes never race in-process.
          if (dialect.name === 'sqlite') context.skip();
          await addSubscription(acme.id);
          const request: PublishRequest = {
            accountId: acme.id,
            type: 'document.signed',
            dataJson: '{}',
            occurredAt: T0,
            requestHash: 'h',
          };
          for (let round = 0; round < 5; round++) {
            const key = `race-${round}`;
            const [[a], [b]] = await Promise.all([
              store.publishEvents([{ ...request, idempotencyKey: key }], T0),
              second.publishEvents([{ ...request, idempotencyKey: key }], T0),
            ]);
            if (!a?.ok || !b?.ok) throw new Error('a racing publish was refused');
            expect(a.event.id).toBe(b.event.id);
            expect([a.replayed, b.replayed].sort()).toEqual([false, true]);
            expect(await deliveriesOf(acme.id, a.event.id)).toHaveLength(1);
          }
          expect((await store.listEvents(acme.id, { limit: 10 })).items).toHaveLength(5);
        });

        it('wakes the other store’s onDue listeners when deliveries are published (PostgreSQL NOTIFY)', async (context) => {
          if (dialect.name === 'sqlite') context.skip();
          await addSubscription(acme.id);
          const woken = new Promise<void>((resolveWoken, reject) => {
            const timer = setTimeout(() => reject(new Error('no notification within 20 s')), 20_000);
            second.onDue(() => {
              clearTimeout(timer);
              resolveWoken();
            });
          });
          await publish({ accountId: acme.id }, T0);
          await woken;
        });
      });

      describe('publishAndClaim (direct hand-off)', () => {
        it('leases the new deliveries to the publisher, exactly as a claim would, and hands them over', async () => {
          const sub = await addSubscription(acme.id, {
            retired_secrets: retired('sealed-old-secret', T0 + HOUR),
          });
          await store.putCallback(callbackRow(acme.id));
          const request = { accountId: acme.id, type: 'document.signed', dataJson: '{"n":1}', occurredAt: T0 };
          const { results, claimed } = await store.publishAndClaim([request], T0, {
            owner: 'worker-a',
            leaseMs: LEASE_MS,
            limit: 10,
          });
          const [published] = results;
          if (!published?.ok) throw new Error('publish refused');
          expect(claimed).toHaveLength(2);

          // The same ClaimedDelivery values a claim of the queued deliveries gives, on a twin store.
          const twin = await openStore(openDialect(parseDatabaseUrl(database.url)));
          try {
            await twin.publishEvents([request], T0);
            const viaClaim = await twin.claimDueDeliveries('worker-b', 10, T0, LEASE_MS);
            const strip = (c: ClaimedDelivery) => ({ ...c, id: '', eventId: '', event: { ...c.event, id: '' } });
            const order = (list: ClaimedDelivery[]) =>
              [...list].sort((a, b) => String(a.subscriptionId).localeCompare(String(b.subscriptionId))).map(strip);
            expect(order(claimed)).toEqual(order(viaClaim));
          } finally {
            await twin.close();
          }
          expect(claimed.find((c) => c.subscriptionId === sub.id)).toMatchObject({
            eventId: published.event.id,
            event: published.event,
            attempt: 1,
            attemptsBefore: 0,
            target: { signingSecretsSealed: ['sealed-signing-secret', 'sealed-old-secret'] },
          });
          for (const c of claimed) {
            expect(await delivery(c.id)).toMatchObject({
              status: 'sending',
              lease_owner: 'worker-a',
              attempt_count: 1,
              next_attempt_at: T0 + LEASE_MS,
            });
          }
          // Nobody else can take them while the lease holds; the lease's end is the next due time.
          const onlyOurs = (list: ClaimedDelivery[]) => list.filter((c) => c.eventId === published.event.id);
          expect(onlyOurs(await store.claimDueDeliveries('worker-c', 10, T0 + LEASE_MS - 1, LEASE_MS))).toEqual([]);

          // Recorded like any claim; a second attempt after a crash is claimed once the lease ends.
          const toSub = claimed.find((c) => c.subscriptionId !== null) as ClaimedDelivery;
          const toCallback = claimed.find((c) => c.subscriptionId === null) as ClaimedDelivery;
          await store.recordAttempts('worker-a', [result(toSub, 'delivered', T0 + 5)], T0 + 5, SETTINGS);
          expect(await delivery(toSub.id)).toMatchObject({ status: 'delivered', lease_owner: null });
          expect((await store.listAttempts([toSub.id])).map((a) => a.number)).toEqual([1]);
          const afterLease = onlyOurs(await store.claimDueDeliveries('worker-c', 10, T0 + LEASE_MS, LEASE_MS));
          expect(afterLease).toHaveLength(1);
          expect(afterLease[0]).toMatchObject({ id: toCallback.id, attempt: 2, attemptsBefore: 1 });
        });

        it('claims at most `limit` deliveries, never held ones, and queues the rest', async () => {
          await addSubscription(acme.id, { target_url: 'https://your-app.com/1' });
          await addSubscription(acme.id, { target_url: 'https://your-app.com/2' });
          const paused = await addSubscription(acme.id, { target_url: 'https://your-app.com/3', status: 'paused' });
          const requests: PublishRequest[] = [1, 2, 3].map((n) => ({
            accountId: acme.id,
            type: 'document.signed',
            dataJson: JSON.stringify({ n }),
            occurredAt: T0,
          }));
          const { results, claimed } = await store.publishAndClaim(requests, T0, {
            owner: 'worker-a',
            leaseMs: LEASE_MS,
            limit: 4,
          });
          expect(results.every((r) => r.ok && r.event.deliveryCount === 3)).toBe(true);
          expect(claimed).toHaveLength(4);
          expect(claimed.some((c) => c.subscriptionId === paused.id)).toBe(false);
          const all = (await store.listDeliveries(acme.id, { limit: 100 })).items;
          const count = (status: string) => all.filter((d) => d.status === status).length;
          expect([count('sending'), count('pending'), count('held')]).toEqual([4, 2, 3]);
          const rest = await store.claimDueDeliveries('worker-b', 10, T0, LEASE_MS);
          expect(rest).toHaveLength(2);
          expect(new Set(ids([...claimed, ...rest])).size).toBe(6);
        });

        it('wakes in-process listeners only for deliveries it left in the queue', async () => {
          await addSubscription(acme.id);
          let wakes = 0;
          const stop = store.onDue(() => wakes++);
          try {
            const request = { accountId: acme.id, type: 'document.signed', dataJson: '{}', occurredAt: T0 };
            const claim = { owner: 'worker-a', leaseMs: LEASE_MS, limit: 1 };
            await store.publishAndClaim([request], T0, claim);
            expect(wakes).toBe(0);
            await store.publishAndClaim([request, request], T0, claim);
            expect(wakes).toBe(1);
          } finally {
            stop();
          }
        });

        it('claims nothing for a keyed request that replays an earlier event', async () => {
          await addSubscription(acme.id);
          const request = {
            accountId: acme.id,
            type: 'document.signed',
            dataJson: '{}',
            occurredAt: T0,
            idempotencyKey: 'k-1',
            requestHash: 'h',
          };
          const claim = { owner: 'worker-a', leaseMs: LEASE_MS, limit: 10 };
          const first = await store.publishAndClaim([request], T0, claim);
          const second = await store.publishAndClaim([request], T0 + 1, claim);
          expect(first.claimed).toHaveLength(1);
          expect(second.claimed).toEqual([]);
          expect(second.results[0]).toMatchObject({ ok: true, replayed: true });
        });
      });

      describe('claiming and recording', () => {
        it('claims only deliveries that are due, earliest first', async () => {
          await addSubscription(acme.id);
          const early = await publish({ accountId: acme.id }, T0);
          await publish({ accountId: acme.id }, T0 + 10 * SECOND);
          expect(await store.claimDueDeliveries('worker-a', 10, T0 - 1, LEASE_MS)).toEqual([]);
          const claimed = await store.claimDueDeliveries('worker-a', 10, T0 + 5 * SECOND, LEASE_MS);
          expect(claimed.map((c) => c.eventId)).toEqual([early.event.id]);
        });

        it('respects the limit and never hands out a leased delivery twice', async () => {
          await addSubscription(acme.id);
          for (let i = 0; i < 5; i++) await publish({ accountId: acme.id }, T0);
          const a = await store.claimDueDeliveries('worker-a', 2, T0, LEASE_MS);
          const b = await store.claimDueDeliveries('worker-b', 2, T0, LEASE_MS);
          const c = await store.claimDueDeliveries('worker-c', 2, T0 + SECOND, LEASE_MS);
          const d = await store.claimDueDeliveries('worker-d', 2, T0 + 2 * SECOND, LEASE_MS);
          expect([a.length, b.length, c.length, d.length]).toEqual([2, 2, 1, 0]);
          expect(new Set(ids([...a, ...b, ...c])).size).toBe(5);
          const stored = await delivery((a[0] as ClaimedDelivery).id);
          expect(stored).toMatchObject({
            status: 'sending',
            lease_owner: 'worker-a',
            attempt_count: 1,
            next_attempt_at: T0 + LEASE_MS,
          });
        });

        it('hands the sender everything it needs: event, attempt numbers and the target', async () => {
          const sub = await addSubscription(acme.id, {
            retired_secrets: retired('sealed-old-secret', T0 + HOUR),
          });
          await store.putCallback(callbackRow(acme.id));
          const { event } = await publish({ accountId: acme.id }, T0);
          const claimed = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          expect(claimed).toHaveLength(2);
          const toSub = claimed.find((c) => c.subscriptionId === sub.id);
          const toCallback = claimed.find((c) => c.subscriptionId === null);
          expect(toSub).toMatchObject({
            eventId: event.id,
            accountId: acme.id,
            attempt: 1,
            attemptsBefore: 0,
            trigger: 'scheduled',
            oneOff: false,
            event,
            target: {
              kind: 'subscription',
              url: sub.target_url,
              secretTokenSealed: 'sealed-secret-token',
              signingSecretsSealed: ['sealed-signing-secret', 'sealed-old-secret'],
            },
          });
          expect(toCallback?.target).toEqual({
            kind: 'callback',
            url: 'https://your-app.com/callback',
            authType: 'Bearer',
            username: null,
            passwordSealed: null,
            bearerTokenSealed: 'sealed-bearer',
            signingSecretsSealed: [],
          });
        });

        it('stops signing with the previous secret once it has expired', async () => {
          await addSubscription(acme.id, {
            retired_secrets: retired('sealed-old-secret', T0 + HOUR),
          });
          await publish({ accountId: acme.id }, T0 + 2 * HOUR);
          const [claimed] = await store.claimDueDeliveries('worker-a', 10, T0 + 2 * HOUR, LEASE_MS);
          expect(claimed?.target).toMatchObject({ signingSecretsSealed: ['sealed-signing-secret'] });
        });

        it('reads the event back from the database for a store that did not publish it', async () => {
          await addSubscription(acme.id);
          const { event } = await publish({ accountId: acme.id }, T0);
          const second = await openStore(openDialect(parseDatabaseUrl(database.url)));
          try {
            const [claimed] = await second.claimDueDeliveries('worker-b', 10, T0, LEASE_MS);
            expect(claimed?.event).toEqual(event);
          } finally {
            await second.close();
          }
        });

        it('records a success: delivered, lease dropped, attempt logged', async () => {
          const sub = await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [claimed] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!claimed) throw new Error('nothing claimed');
          await store.recordAttempts(
            'worker-a',
            [result(claimed, 'delivered', T0 + 5, { durationMs: 40, responseExcerpt: 'thanks' })],
            T0 + 50,
            SETTINGS,
          );
          expect(await delivery(claimed.id)).toMatchObject({
            status: 'delivered',
            delivered_at: T0 + 50,
            lease_owner: null,
            attempt_count: 1,
          });
          const attempts = await store.listAttempts([claimed.id]);
          expect(attempts).toEqual([
            {
              delivery_id: claimed.id,
              number: 1,
              trigger: 'scheduled',
              started_at: T0 + 5,
              duration_ms: 40,
              status_code: 200,
              error: null,
              response_excerpt: 'thanks',
              request_url: sub.target_url,
              request_headers: '{"content-type":"application/json"}',
              response_headers: '{"content-type":"text/plain"}',
            },
          ]);
          expect((await subscription(sub.id)).failing_since).toBeNull();
          expect(await store.claimDueDeliveries('worker-a', 10, T0 + HOUR, LEASE_MS)).toEqual([]);
          expect(await store.nextDueAt()).toBeUndefined();
        });

        it('records a retry: pending again at the given time, then claimed as the next attempt', async () => {
          await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [first] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!first) throw new Error('nothing claimed');
          await store.recordAttempts(
            'worker-a',
            [
              result(first, 'retry', T0, {
                statusCode: null,
                error: 'connect ECONNREFUSED',
                nextAttemptAt: T0 + 60_000,
              }),
            ],
            T0 + 10,
            SETTINGS,
          );
          expect(await delivery(first.id)).toMatchObject({
            status: 'pending',
            next_attempt_at: T0 + 60_000,
            lease_owner: null,
          });
          expect(await store.nextDueAt()).toBe(T0 + 60_000);
          expect(await store.claimDueDeliveries('worker-a', 10, T0 + 59_999, LEASE_MS)).toEqual([]);
          const [second] = await store.claimDueDeliveries('worker-a', 10, T0 + 60_000, LEASE_MS);
          expect(second).toMatchObject({ id: first.id, attempt: 2, attemptsBefore: 1, trigger: 'scheduled' });
          const [attempt] = await store.listAttempts([first.id]);
          expect(attempt).toMatchObject({ number: 1, status_code: null, error: 'connect ECONNREFUSED' });
        });

        it('records a final failure as failed', async () => {
          await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [claimed] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!claimed) throw new Error('nothing claimed');
          await store.recordAttempts('worker-a', [result(claimed, 'failed', T0)], T0 + 10, SETTINGS);
          expect(await delivery(claimed.id)).toMatchObject({ status: 'failed', lease_owner: null, delivered_at: null });
          expect(await store.nextDueAt()).toBeUndefined();
        });

        it('records a batch of mixed outcomes in one call', async () => {
          await addSubscription(acme.id);
          for (let i = 0; i < 3; i++) await publish({ accountId: acme.id }, T0);
          const claimed = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          const [a, b, c] = claimed;
          if (!a || !b || !c) throw new Error('expected three claims');
          await store.recordAttempts(
            'worker-a',
            [result(a, 'delivered', T0), result(b, 'retry', T0, { nextAttemptAt: T0 + HOUR }), result(c, 'failed', T0)],
            T0 + 10,
            SETTINGS,
          );
          expect((await delivery(a.id)).status).toBe('delivered');
          expect(await delivery(b.id)).toMatchObject({ status: 'pending', next_attempt_at: T0 + HOUR });
          expect((await delivery(c.id)).status).toBe('failed');
          expect(await store.listAttempts(ids(claimed))).toHaveLength(3);
        });

        it('makes a delivery whose lease ran out claimable again, and ignores the stale owner’s result', async () => {
          await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [first] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!first) throw new Error('nothing claimed');
          expect(await store.claimDueDeliveries('worker-b', 10, T0 + LEASE_MS - 1, LEASE_MS)).toEqual([]);
          expect(await store.nextDueAt()).toBe(T0 + LEASE_MS);

          const retakenAt = T0 + LEASE_MS + 1;
          const [retaken] = await store.claimDueDeliveries('worker-b', 10, retakenAt, LEASE_MS);
          expect(retaken).toMatchObject({ id: first.id, attempt: 2, attemptsBefore: 1 });
          expect(await delivery(first.id)).toMatchObject({ status: 'sending', lease_owner: 'worker-b' });

          // worker-a comes back with a late answer: it is logged but the delivery stays with worker-b.
          await store.recordAttempts('worker-a', [result(first, 'delivered', T0)], retakenAt + 1, SETTINGS);
          expect(await delivery(first.id)).toMatchObject({ status: 'sending', lease_owner: 'worker-b' });
          await store.recordAttempts(
            'worker-b',
            [result(retaken as ClaimedDelivery, 'failed', retakenAt)],
            retakenAt + 2,
            SETTINGS,
          );
          expect((await delivery(first.id)).status).toBe('failed');
          const attempts = await store.listAttempts([first.id]);
          expect(attempts.map((a) => [a.number, a.status_code])).toEqual([
            [1, 200],
            [2, 400],
          ]);
        });

        it('disables the subscription on 410 Gone and holds its other queued deliveries', async () => {
          const sub = await addSubscription(acme.id, { target_url: 'https://your-app.com/gone' });
          const healthy = await addSubscription(acme.id, { target_url: 'https://your-app.com/fine' });
          await store.putCallback(callbackRow(acme.id));
          await publish({ accountId: acme.id, onlySubscriptionId: sub.id }, T0);
          const later = await publish({ accountId: acme.id }, T0 + SECOND);
          const [claimed] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!claimed) throw new Error('nothing claimed');
          await store.recordAttempts('worker-a', [result(claimed, 'gone', T0)], T0 + 10, SETTINGS);

          expect((await delivery(claimed.id)).status).toBe('failed');
          const disabled = await subscription(sub.id);
          expect(disabled.status).toBe('disabled');
          expect(disabled.disabled_reason).toMatch(/410/);
          const laterDeliveries = new Map(
            (await deliveriesOf(acme.id, later.event.id)).map((d) => [d.subscription_id, d.status]),
          );
          expect(laterDeliveries).toEqual(
            new Map([
              [sub.id, 'held'],
              [healthy.id, 'pending'],
              [null, 'pending'],
            ]),
          );
          const next = await store.claimDueDeliveries('worker-a', 10, T0 + HOUR, LEASE_MS);
          expect(next.map((c) => c.subscriptionId).sort()).toEqual([healthy.id, null].sort());
          expect((await subscription(healthy.id)).status).toBe('active');
        });

        it('disables a subscription whose attempts have failed for disableAfterFailingMs, and holds its deliveries', async () => {
          const limit = SETTINGS.disableAfterFailingMs;
          const sub = await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [first] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!first) throw new Error('nothing claimed');
          await store.recordAttempts(
            'worker-a',
            [result(first, 'retry', T0, { nextAttemptAt: T0 + SECOND })],
            T0,
            SETTINGS,
          );
          expect(await subscription(sub.id)).toMatchObject({ status: 'active', failing_since: T0 });

          await publish({ accountId: acme.id }, T0 + 2 * SECOND);
          const almost = T0 + limit - 1;
          const round2 = await store.claimDueDeliveries('worker-a', 10, almost, LEASE_MS);
          expect(round2).toHaveLength(2);
          await store.recordAttempts(
            'worker-a',
            round2.map((c) => result(c, 'retry', almost, { nextAttemptAt: almost + SECOND })),
            almost,
            SETTINGS,
          );
          expect(await subscription(sub.id)).toMatchObject({ status: 'active', failing_since: T0 });

          const past = almost + SECOND;
          const round3 = await store.claimDueDeliveries('worker-a', 10, past, LEASE_MS);
          expect(round3).toHaveLength(2);
          await store.recordAttempts(
            'worker-a',
            round3.map((c) => result(c, 'retry', past, { nextAttemptAt: past + SECOND })),
            past,
            SETTINGS,
          );
          const disabled = await subscription(sub.id);
          expect(disabled.status).toBe('disabled');
          expect(disabled.disabled_reason).toMatch(/^every attempt failed for /);
          for (const c of round3) expect((await delivery(c.id)).status).toBe('held');
          expect(await store.claimDueDeliveries('worker-a', 10, past + HOUR, LEASE_MS)).toEqual([]);
          expect(await store.nextDueAt()).toBeUndefined();
        });

        it('ends a run of failures with one success', async () => {
          const sub = await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [first] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!first) throw new Error('nothing claimed');
          await store.recordAttempts(
            'worker-a',
            [result(first, 'retry', T0, { nextAttemptAt: T0 + HOUR })],
            T0,
            SETTINGS,
          );
          expect((await subscription(sub.id)).failing_since).toBe(T0);
          const [second] = await store.claimDueDeliveries('worker-a', 10, T0 + HOUR, LEASE_MS);
          if (!second) throw new Error('nothing claimed');
          await store.recordAttempts('worker-a', [result(second, 'delivered', T0 + HOUR)], T0 + HOUR, SETTINGS);
          expect(await subscription(sub.id)).toMatchObject({ status: 'active', failing_since: null });
        });

        it('gives claims back without counting an attempt', async () => {
          await addSubscription(acme.id);
          for (let i = 0; i < 3; i++) await publish({ accountId: acme.id }, T0);
          const claimed = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          const [a, b, c] = claimed;
          if (!a || !b || !c) throw new Error('expected three claims');
          expect(await store.releaseClaims('worker-b', 'all', T0 + SECOND)).toBe(0);
          expect(await store.releaseClaims('worker-a', [a.id], T0 + SECOND)).toBe(1);
          expect(await delivery(a.id)).toMatchObject({
            status: 'pending',
            attempt_count: 0,
            lease_owner: null,
            next_attempt_at: T0 + SECOND,
          });
          expect((await delivery(b.id)).status).toBe('sending');
          expect(await store.releaseClaims('worker-a', 'all', T0 + SECOND)).toBe(2);
          expect(await store.releaseClaims('worker-a', [], T0 + SECOND)).toBe(0);
          const again = await store.claimDueDeliveries('worker-b', 10, T0 + SECOND, LEASE_MS);
          expect(ids(again).sort()).toEqual(ids(claimed).sort());
          for (const d of again) expect(d).toMatchObject({ attempt: 1, attemptsBefore: 0 });
          expect(await store.listAttempts(ids(claimed))).toEqual([]);
        });

        it('reports when the next delivery or lease falls due', async () => {
          expect(await store.nextDueAt()).toBeUndefined();
          const sub = await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0 + HOUR);
          expect(await store.nextDueAt()).toBe(T0 + HOUR);
          await publish({ accountId: acme.id }, T0);
          expect(await store.nextDueAt()).toBe(T0);
          await store.claimDueDeliveries('worker-a', 1, T0, 2 * HOUR);
          expect(await store.nextDueAt()).toBe(T0 + HOUR);
          await store.updateSubscription(acme.id, sub.id, { status: 'paused' }, T0 + 1);
          // The held delivery no longer counts; the in-flight lease still does.
          expect(await store.nextDueAt()).toBe(T0 + 2 * HOUR);
        });
      });

      describe('pause, resume and delete', () => {
        it('holds pending deliveries while paused and releases them, due at once, on resume', async () => {
          const sub = await addSubscription(acme.id);
          await store.putCallback(callbackRow(acme.id));
          const before = await publish({ accountId: acme.id }, T0);
          const paused = await store.updateSubscription(acme.id, sub.id, { status: 'paused' }, T0 + SECOND);
          expect(paused?.status).toBe('paused');
          const during = await publish({ accountId: acme.id }, T0 + 2 * SECOND);
          const held = (await store.listDeliveries(acme.id, { limit: 10, subscriptionId: sub.id })).items;
          expect(held.map((d) => d.status)).toEqual(['held', 'held']);
          const claimedWhilePaused = await store.claimDueDeliveries('worker-a', 10, T0 + HOUR, LEASE_MS);
          expect(claimedWhilePaused.map((c) => c.subscriptionId)).toEqual([null, null]);
          await store.recordAttempts(
            'worker-a',
            claimedWhilePaused.map((c) => result(c, 'delivered', T0 + HOUR)),
            T0 + HOUR,
            SETTINGS,
          );

          const resumedAt = T0 + 2 * HOUR;
          const resumed = await store.updateSubscription(acme.id, sub.id, { status: 'active' }, resumedAt);
          expect(resumed?.status).toBe('active');
          const released = (await store.listDeliveries(acme.id, { limit: 10, subscriptionId: sub.id })).items;
          for (const d of released) expect(d).toMatchObject({ status: 'pending', next_attempt_at: resumedAt });
          const claimed = await store.claimDueDeliveries('worker-a', 10, resumedAt, LEASE_MS);
          expect(claimed.map((c) => c.eventId).sort()).toEqual([before.event.id, during.event.id].sort());
          for (const c of claimed) expect(c).toMatchObject({ subscriptionId: sub.id, attempt: 1 });
        });

        it('reactivating a disabled subscription clears its reason and failure run and releases its deliveries', async () => {
          const sub = await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          await publish({ accountId: acme.id }, T0 + SECOND);
          const [claimed] = await store.claimDueDeliveries('worker-a', 1, T0, LEASE_MS);
          if (!claimed) throw new Error('nothing claimed');
          await store.recordAttempts('worker-a', [result(claimed, 'gone', T0)], T0, SETTINGS);
          expect((await subscription(sub.id)).status).toBe('disabled');
          const reactivated = await store.updateSubscription(acme.id, sub.id, { status: 'active' }, T0 + HOUR);
          expect(reactivated).toMatchObject({ status: 'active', disabled_reason: null, failing_since: null });
          expect(await subscription(sub.id)).toMatchObject({ status: 'active', disabled_reason: null });
          const next = await store.claimDueDeliveries('worker-a', 10, T0 + HOUR, LEASE_MS);
          expect(next).toHaveLength(1);
        });

        it('holds, without counting an attempt, a delivery whose lease runs out while its subscription is paused', async () => {
          const sub = await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [first] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!first) throw new Error('nothing claimed');
          await store.updateSubscription(acme.id, sub.id, { status: 'paused' }, T0 + 1);
          expect((await delivery(first.id)).status).toBe('sending');
          expect(await store.claimDueDeliveries('worker-b', 10, T0 + 2 * LEASE_MS, LEASE_MS)).toEqual([]);
          expect(await delivery(first.id)).toMatchObject({ status: 'held', attempt_count: 1, lease_owner: null });
          await store.updateSubscription(acme.id, sub.id, { status: 'active' }, T0 + HOUR);
          const [again] = await store.claimDueDeliveries('worker-b', 10, T0 + HOUR, LEASE_MS);
          expect(again).toMatchObject({ id: first.id, attempt: 2 });
        });

        it('sends an operator’s manual redelivery of a held delivery even while the subscription is paused', async () => {
          const sub = await addSubscription(acme.id);
          await store.updateSubscription(acme.id, sub.id, { status: 'paused' }, T0);
          const { event } = await publish({ accountId: acme.id }, T0);
          const [held] = await deliveriesOf(acme.id, event.id);
          if (!held) throw new Error('no delivery');
          expect(held.status).toBe('held');
          expect(await store.requestRedelivery(acme.id, held.id, T0 + SECOND)).toMatchObject({ status: 'pending' });
          const [manual] = await store.claimDueDeliveries('worker-a', 10, T0 + SECOND, LEASE_MS);
          expect(manual).toMatchObject({ id: held.id, trigger: 'manual', oneOff: true });
        });

        it('cancels a callback delivery at claim time when the callback was disabled since it was queued', async () => {
          await store.putCallback(callbackRow(acme.id));
          const { event } = await publish({ accountId: acme.id }, T0);
          await store.putCallback(callbackRow(acme.id, { url: '', updated_at: T0 + 1 }));
          expect(await store.claimDueDeliveries('worker-a', 10, T0 + SECOND, LEASE_MS)).toEqual([]);
          const [cancelled] = await deliveriesOf(acme.id, event.id);
          expect(cancelled).toMatchObject({ status: 'cancelled', attempt_count: 0, lease_owner: null });
          expect(await store.nextDueAt()).toBeUndefined();
        });

        it('cancels every delivery not yet made when the subscription is deleted, and never claims them', async () => {
          const sub = await addSubscription(acme.id);
          const kept = await addSubscription(acme.id, { target_url: 'https://your-app.com/kept' });
          await publish({ accountId: acme.id }, T0);
          const inFlight = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          expect(inFlight).toHaveLength(2);
          await publish({ accountId: acme.id }, T0 + SECOND);
          await store.updateSubscription(acme.id, sub.id, { status: 'paused' }, T0 + 2 * SECOND);
          await publish({ accountId: acme.id }, T0 + 3 * SECOND);

          expect(await store.deleteSubscription(acme.id, sub.id, T0 + 4 * SECOND)).toBe(true);
          const all = (await store.listDeliveries(acme.id, { limit: 20 })).items;
          const mine = all.filter((d) => d.subscription_id === sub.id);
          expect(mine).toHaveLength(3);
          for (const d of mine) expect(d).toMatchObject({ status: 'cancelled', lease_owner: null });
          // The result of the attempt that was in flight is logged but does not revive it.
          await store.recordAttempts(
            'worker-a',
            inFlight.map((c) => result(c, 'delivered', T0)),
            T0 + 5 * SECOND,
            SETTINGS,
          );
          for (const c of inFlight) {
            expect((await delivery(c.id)).status).toBe(c.subscriptionId === sub.id ? 'cancelled' : 'delivered');
          }
          expect(await store.listAttempts(ids(inFlight))).toHaveLength(2);
          const later = await store.claimDueDeliveries('worker-b', 50, T0 + 2 * LEASE_MS, LEASE_MS);
          expect(later.map((c) => c.subscriptionId)).toEqual([kept.id, kept.id]);
          await store.recordAttempts(
            'worker-b',
            later.map((c) => result(c, 'delivered', T0 + 2 * LEASE_MS)),
            T0 + 2 * LEASE_MS,
            SETTINGS,
          );
          expect(await store.claimDueDeliveries('worker-c', 50, T0 + 10 * LEASE_MS, LEASE_MS)).toEqual([]);
        });
      });

      describe('listen sessions', () => {
        const open = (tokenId: string, eventTypes: string[], now = T0, accountId = acme.id) =>
          store.openListenSession({
            accountId,
            tokenId,
            eventTypes,
            newId: `lsn_${tokenId}_${now}`,
            newSigningSecretSealed: `sealed-${tokenId}-${now}`,
            now,
          });

        it('keeps one session per token: opening it again keeps its id and secret and takes the new event types', async () => {
          const first = await open('tok_a', ['document.signed']);
          expect(first).toMatchObject({ kind: 'listen', status: 'active', event_types: 'document.signed' });
          expect(first.id).toMatch(/^lsn_/);
          await store.endListenSession(acme.id, first.id, T0 + SECOND);
          const again = await open('tok_a', ['document.sent', 'document.signed'], T0 + 2 * SECOND);
          expect(again).toMatchObject({
            id: first.id,
            signing_secret_sealed: first.signing_secret_sealed,
            status: 'active',
            disabled_reason: null,
          });
          expect(await store.getListenSession(acme.id, first.id)).toMatchObject({ status: 'active' });
          const second = await open('tok_b', ['document.signed']);
          expect(second.id).not.toBe(first.id);
          // Sessions are not subscriptions to the API, and not another account's to read.
          expect(await store.getSubscription(acme.id, first.id)).toBeUndefined();
          expect((await store.listSubscriptions(acme.id, { limit: 100 })).items).toEqual([]);
          expect(await store.getListenSession(other.id, first.id)).toBeUndefined();
          // Its new event types are what fan-out uses.
          const { event } = await publish({ accountId: acme.id, type: 'document.sent' }, T0 + 3 * SECOND);
          expect((await deliveriesOf(acme.id, event.id)).map((d) => d.subscription_id)).toEqual([first.id]);
          expect(second.event_types).toBe('document.signed');
        });

        it('keeps its deliveries from every dispatcher: only a claim for that session takes them', async () => {
          const session = await open('tok_a', ['document.signed']);
          const neighbour = await open('tok_b', ['document.signed']);
          const sub = await addSubscription(acme.id);
          const { event } = await publish({ accountId: acme.id }, T0);
          const made = await deliveriesOf(acme.id, event.id);
          expect(made.map((d) => [d.subscription_id, d.listen]).sort()).toEqual(
            [
              [session.id, 1],
              [neighbour.id, 1],
              [sub.id, 0],
            ].sort(),
          );
          const dispatched = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          expect(dispatched.map((d) => d.subscriptionId)).toEqual([sub.id]);
          const [mine, ...rest] = await store.claimListenDeliveries('listen-a', session.id, 10, T0, LEASE_MS);
          expect(rest).toEqual([]);
          expect(mine).toMatchObject({ subscriptionId: session.id, eventId: event.id, attempt: 1 });
          expect(mine?.target.signingSecretsSealed).toEqual([session.signing_secret_sealed]);
          // Leased: not handed out twice.
          expect(await store.claimListenDeliveries('listen-b', session.id, 10, T0 + 1, LEASE_MS)).toEqual([]);
          expect((await store.listDeliveries(acme.id, { limit: 100, target: 'listen' })).items).toHaveLength(2);
          expect((await store.listDeliveries(acme.id, { limit: 100, target: 'subscription' })).items).toEqual([
            expect.objectContaining({ subscription_id: sub.id }),
          ]);
        });

        it('retries a failed local answer on the schedule, and a released claim is due again at once', async () => {
          const session = await open('tok_a', ['document.signed']);
          await publish({ accountId: acme.id }, T0);
          const [first] = await store.claimListenDeliveries('listen-a', session.id, 10, T0, LEASE_MS);
          if (!first) throw new Error('nothing claimed');
          await store.recordAttempts(
            'listen-a',
            [result(first, 'retry', T0, { statusCode: 500, nextAttemptAt: T0 + 5 * SECOND })],
            T0 + 10,
            SETTINGS,
          );
          expect(await store.claimListenDeliveries('listen-a', session.id, 10, T0 + 4 * SECOND, LEASE_MS)).toEqual([]);
          const [second] = await store.claimListenDeliveries('listen-a', session.id, 10, T0 + 5 * SECOND, LEASE_MS);
          expect(second).toMatchObject({ id: first.id, attempt: 2 });
          if (!second) throw new Error('nothing claimed');
          // The stream closed before the CLI answered: back to the queue, no attempt counted.
          expect(await store.releaseClaims('listen-a', [second.id], T0 + 6 * SECOND)).toBe(1);
          const [third] = await store.claimListenDeliveries('listen-b', session.id, 10, T0 + 6 * SECOND, LEASE_MS);
          expect(third).toMatchObject({ id: first.id, attempt: 2 });
          expect(await store.listAttempts([first.id])).toHaveLength(1);
        });

        it('is never disabled by its local answers, 410 Gone included', async () => {
          const session = await open('tok_a', ['document.signed']);
          await publish({ accountId: acme.id }, T0);
          const [claimed] = await store.claimListenDeliveries('listen-a', session.id, 10, T0, LEASE_MS);
          if (!claimed) throw new Error('nothing claimed');
          await store.recordAttempts('listen-a', [result(claimed, 'gone', T0 + 1)], T0 + 1, {
            disableAfterFailingMs: 1,
          });
          expect(await store.getListenSession(acme.id, session.id)).toMatchObject({ status: 'active' });
        });

        it('ends a session: no new deliveries, and those not yet made cancelled, in flight included', async () => {
          const session = await open('tok_a', ['document.signed']);
          await publish({ accountId: acme.id }, T0);
          await publish({ accountId: acme.id }, T0 + 1);
          const [inFlight] = await store.claimListenDeliveries('listen-a', session.id, 1, T0 + 2, LEASE_MS);
          expect(inFlight).toBeDefined();
          expect(await store.endListenSession(other.id, session.id, T0 + 3)).toBeUndefined();
          expect(await store.endListenSession(acme.id, session.id, T0 + 3)).toBe(2);
          const log = (await store.listDeliveries(acme.id, { limit: 100, target: 'listen' })).items;
          expect(log.map((d) => d.status)).toEqual(['cancelled', 'cancelled']);
          expect(await store.getListenSession(acme.id, session.id)).toMatchObject({ status: 'disabled' });
          const { event } = await publish({ accountId: acme.id }, T0 + 4);
          expect(await deliveriesOf(acme.id, event.id)).toEqual([]);
          expect(await store.claimListenDeliveries('listen-a', session.id, 10, T0 + 5, LEASE_MS)).toEqual([]);
        });

        it('ends the sessions no stream has been connected to since a time, and spares those touched since', async () => {
          const idle = await open('tok_a', ['document.signed'], T0);
          const live = await open('tok_b', ['document.signed'], T0);
          await publish({ accountId: acme.id }, T0 + SECOND);
          await store.touchListenSessions([live.id], T0 + HOUR);
          const ended = await store.endIdleListenSessions(T0 + HOUR - 1, T0 + HOUR + 1, 'idle for a day');
          expect(ended).toEqual([{ id: idle.id, accountId: acme.id, cancelled: 1 }]);
          expect(await store.getListenSession(acme.id, idle.id)).toMatchObject({
            status: 'disabled',
            disabled_reason: 'idle for a day',
          });
          expect(await store.getListenSession(acme.id, live.id)).toMatchObject({ status: 'active' });
          expect(await store.endIdleListenSessions(T0 + HOUR - 1, T0 + HOUR + 2, 'idle')).toEqual([]);
        });
      });

      describe('redelivery and replay', () => {
        it('queues one manual attempt on a delivered delivery', async () => {
          const { claimed } = await finishedDelivery('delivered', T0);
          const queued = await store.requestRedelivery(acme.id, claimed.id, T0 + HOUR);
          expect(queued).toMatchObject({ id: claimed.id, status: 'pending', next_attempt_at: T0 + HOUR });
          expect(await store.nextDueAt()).toBe(T0 + HOUR);
          const [manual] = await store.claimDueDeliveries('worker-a', 10, T0 + HOUR, LEASE_MS);
          expect(manual).toMatchObject({ id: claimed.id, attempt: 2, trigger: 'manual', oneOff: true });
          await store.recordAttempts(
            'worker-a',
            [result(manual as ClaimedDelivery, 'delivered', T0 + HOUR)],
            T0 + HOUR,
            SETTINGS,
          );
          expect((await store.listAttempts([claimed.id])).map((a) => a.trigger)).toEqual(['scheduled', 'manual']);
          expect((await delivery(claimed.id)).status).toBe('delivered');
        });

        it('queues one manual attempt on a failed delivery', async () => {
          const { claimed } = await finishedDelivery('failed', T0);
          expect(await store.requestRedelivery(acme.id, claimed.id, T0 + HOUR)).toMatchObject({ status: 'pending' });
          const [manual] = await store.claimDueDeliveries('worker-a', 10, T0 + HOUR, LEASE_MS);
          expect(manual).toMatchObject({ id: claimed.id, attempt: 2, trigger: 'manual', oneOff: true });
          await store.recordAttempts(
            'worker-a',
            [result(manual as ClaimedDelivery, 'failed', T0 + HOUR)],
            T0 + HOUR,
            SETTINGS,
          );
          expect((await delivery(claimed.id)).status).toBe('failed');
        });

        it('brings a pending retry forward to now, keeping its retry schedule', async () => {
          await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [first] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!first) throw new Error('nothing claimed');
          await store.recordAttempts(
            'worker-a',
            [result(first, 'retry', T0, { nextAttemptAt: T0 + HOUR })],
            T0,
            SETTINGS,
          );
          const nudged = await store.requestRedelivery(acme.id, first.id, T0 + SECOND);
          expect(nudged).toMatchObject({ status: 'pending', next_attempt_at: T0 + SECOND });
          const [manual] = await store.claimDueDeliveries('worker-a', 10, T0 + SECOND, LEASE_MS);
          expect(manual).toMatchObject({
            id: first.id,
            attempt: 2,
            attemptsBefore: 1,
            trigger: 'manual',
            oneOff: false,
          });
        });

        it('answers in_flight while sending, cancelled for a cancelled delivery, and nothing for another account', async () => {
          const sub = await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          const [sending] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
          if (!sending) throw new Error('nothing claimed');
          expect(await store.requestRedelivery(acme.id, sending.id, T0 + 1)).toBe('in_flight');
          expect(await store.requestRedelivery(other.id, sending.id, T0 + 1)).toBeUndefined();
          expect(await store.requestRedelivery(acme.id, newId('dlv'), T0 + 1)).toBeUndefined();
          expect(await delivery(sending.id)).toMatchObject({ status: 'sending', lease_owner: 'worker-a' });
          await store.deleteSubscription(acme.id, sub.id, T0 + 2);
          expect(await store.requestRedelivery(acme.id, sending.id, T0 + 3)).toBe('cancelled');
          expect((await delivery(sending.id)).status).toBe('cancelled');
        });

        it('replays only the subscription’s failed deliveries created in the window, as a new retry round', async () => {
          const sub = await addSubscription(acme.id);
          const otherSub = await addSubscription(acme.id, { target_url: 'https://your-app.com/other' });
          const failAll = async (now: number, outcome: AttemptOutcome = 'failed') => {
            const claimed = await store.claimDueDeliveries('worker-a', 10, now, LEASE_MS);
            await store.recordAttempts(
              'worker-a',
              claimed.map((c) => result(c, outcome, now)),
              now,
              SETTINGS,
            );
            return claimed;
          };
          await publish({ accountId: acme.id, onlySubscriptionId: sub.id }, T0 - HOUR); // before the window
          await failAll(T0 - HOUR);
          const inWindow = await publish({ accountId: acme.id }, T0); // both subscriptions
          await failAll(T0);
          await publish({ accountId: acme.id, onlySubscriptionId: sub.id }, T0 + HOUR); // delivered: not replayed
          await failAll(T0 + HOUR, 'delivered');
          await publish({ accountId: acme.id, onlySubscriptionId: sub.id }, T0 + 2 * HOUR); // at `until`: excluded
          await failAll(T0 + 2 * HOUR);

          expect(await store.replayFailed(other.id, sub.id, T0, T0 + 2 * HOUR, T0 + 3 * HOUR)).toBe(0);
          expect(await store.replayFailed(acme.id, sub.id, T0, T0 + 2 * HOUR, T0 + 3 * HOUR)).toBe(1);
          const claimed = await store.claimDueDeliveries('worker-a', 10, T0 + 3 * HOUR, LEASE_MS);
          expect(claimed).toHaveLength(1);
          expect(claimed[0]).toMatchObject({
            eventId: inWindow.event.id,
            subscriptionId: sub.id,
            attempt: 2,
            attemptsBefore: 0,
            trigger: 'scheduled',
            oneOff: false,
          });
          const otherFailed = await store.listDeliveries(acme.id, {
            limit: 10,
            subscriptionId: otherSub.id,
            status: 'failed',
          });
          expect(otherFailed.items).toHaveLength(1);
        });
      });

      describe('listing events, deliveries and attempts', () => {
        it('lists events newest first, filtered by type and by a created_at window, page by page', async () => {
          const made: EventRecord[] = [];
          for (let i = 0; i < 6; i++) {
            const type = i % 2 === 0 ? 'document.signed' : 'document.sent';
            made.push((await publish({ accountId: acme.id, type }, T0 + i * SECOND)).event);
          }
          await publish({ accountId: other.id }, T0);
          const pages = await allPages((cursor) => store.listEvents(acme.id, { limit: 4, cursor }));
          expect(pages.map((p) => p.length)).toEqual([4, 2]);
          expect(pages.flat().map((e) => e.id)).toEqual(ids(made).reverse());
          const sent = await store.listEvents(acme.id, { limit: 10, eventType: 'document.sent' });
          expect(ids(sent.items)).toEqual(ids(made.filter((e) => e.type === 'document.sent')).reverse());
          const window = await store.listEvents(acme.id, { limit: 10, since: T0 + SECOND, until: T0 + 3 * SECOND });
          expect(ids(window.items)).toEqual([made[2]?.id, made[1]?.id]);
          expect(await store.getEvent(other.id, (made[0] as EventRecord).id)).toBeUndefined();
        });

        it('lists deliveries newest first, filtered by subscription, event, status and window, page by page', async () => {
          const a = await addSubscription(acme.id, { target_url: 'https://your-app.com/a' });
          const b = await addSubscription(acme.id, { target_url: 'https://your-app.com/b' });
          const events: EventRecord[] = [];
          for (let i = 0; i < 3; i++) events.push((await publish({ accountId: acme.id }, T0 + i * SECOND)).event);
          const all = await allPages((cursor) => store.listDeliveries(acme.id, { limit: 4, cursor }));
          expect(all.map((p) => p.length)).toEqual([4, 2]);
          const flat = all.flat();
          expect(new Set(ids(flat)).size).toBe(6);
          expect(ids(flat)).toEqual([...ids(flat)].sort().reverse());

          const forA = await store.listDeliveries(acme.id, { limit: 10, subscriptionId: a.id });
          expect(forA.items.map((d) => d.subscription_id)).toEqual([a.id, a.id, a.id]);
          const forEvent = await store.listDeliveries(acme.id, { limit: 10, eventId: (events[1] as EventRecord).id });
          expect(forEvent.items.map((d) => d.subscription_id).sort()).toEqual([a.id, b.id].sort());

          const [claimed] = await store.claimDueDeliveries('worker-a', 1, T0, LEASE_MS);
          if (!claimed) throw new Error('nothing claimed');
          await store.recordAttempts('worker-a', [result(claimed, 'failed', T0)], T0, SETTINGS);
          const failed = await store.listDeliveries(acme.id, { limit: 10, status: 'failed' });
          expect(ids(failed.items)).toEqual([claimed.id]);

          const window = await store.listDeliveries(acme.id, { limit: 10, since: T0 + SECOND, until: T0 + 2 * SECOND });
          expect(window.items.map((d) => d.event_id)).toEqual([events[1]?.id, events[1]?.id]);
          expect((await store.listDeliveries(other.id, { limit: 10 })).items).toEqual([]);
          expect(await store.getDelivery(other.id, claimed.id)).toBeUndefined();
        });

        it('lists attempts by delivery, in attempt order, and nothing for no ids', async () => {
          await addSubscription(acme.id);
          await publish({ accountId: acme.id }, T0);
          await publish({ accountId: acme.id }, T0);
          let now = T0;
          for (let round = 0; round < 3; round++) {
            const claimed = await store.claimDueDeliveries('worker-a', 10, now, LEASE_MS);
            await store.recordAttempts(
              'worker-a',
              claimed.map((c) => result(c, 'retry', now, { nextAttemptAt: now + SECOND })),
              now,
              SETTINGS,
            );
            now += SECOND;
          }
          const deliveries = (await store.listDeliveries(acme.id, { limit: 10 })).items;
          const attempts = await store.listAttempts(ids(deliveries));
          const expected = ids(deliveries)
            .sort()
            .flatMap((id) => [1, 2, 3].map((n) => [id, n]));
          expect(attempts.map((a) => [a.delivery_id, a.number])).toEqual(expected);
          expect(await store.listAttempts([])).toEqual([]);
        });
      });

      describe('delivery controls', () => {
        const doc = (id: string) => JSON.stringify({ document_id: id, signer_email: 'a@example.com' });
        const publishDoc = (documentId: string, now: number) =>
          publish({ accountId: acme.id, dataJson: doc(documentId), documentId }, now);
        const statusOf = async (eventId: string) => (await deliveriesOf(acme.id, eventId))[0]?.status;

        describe('ordering by document', () => {
          it('lets one delivery per document out at a time, in publish order, through retries and final failures', async () => {
            await addSubscription(acme.id, { ordering: 'document' });
            const a1 = await publishDoc('doc_A', T0);
            const a2 = await publishDoc('doc_A', T0 + 1);
            const b1 = await publishDoc('doc_B', T0 + 2);
            const a3 = await publishDoc('doc_A', T0 + 3);
            expect([await statusOf(a2.event.id), await statusOf(a3.event.id)]).toEqual(['waiting', 'waiting']);

            const first = await store.claimDueDeliveries('worker-a', 10, T0 + 10, LEASE_MS);
            expect(first.map((c) => c.eventId).sort()).toEqual([a1.event.id, b1.event.id].sort());
            const claimedA1 = first.find((c) => c.eventId === a1.event.id) as ClaimedDelivery;
            const claimedB1 = first.find((c) => c.eventId === b1.event.id) as ClaimedDelivery;
            // A retry of A1 keeps A2 back; B is not held up by A.
            await store.recordAttempts(
              'worker-a',
              [
                result(claimedA1, 'retry', T0 + 11, { nextAttemptAt: T0 + 5 * SECOND }),
                result(claimedB1, 'delivered', T0 + 11),
              ],
              T0 + 11,
              SETTINGS,
            );
            expect(await store.claimDueDeliveries('worker-a', 10, T0 + SECOND, LEASE_MS)).toEqual([]);
            expect(await statusOf(a2.event.id)).toBe('waiting');

            const retried = await store.claimDueDeliveries('worker-a', 10, T0 + 5 * SECOND, LEASE_MS);
            expect(retried.map((c) => c.eventId)).toEqual([a1.event.id]);
            await store.recordAttempts(
              'worker-a',
              [result(retried[0] as ClaimedDelivery, 'delivered', T0 + 5 * SECOND)],
              T0 + 5 * SECOND,
              SETTINGS,
            );
            const next = await store.claimDueDeliveries('worker-a', 10, T0 + 5 * SECOND, LEASE_MS);
            expect(next.map((c) => c.eventId)).toEqual([a2.event.id]);
            expect(await statusOf(a3.event.id)).toBe('waiting');
            // A final failure lets the next one go too.
            await store.recordAttempts(
              'worker-a',
              [result(next[0] as ClaimedDelivery, 'failed', T0 + 6 * SECOND)],
              T0 + 6 * SECOND,
              SETTINGS,
            );
            const last = await store.claimDueDeliveries('worker-a', 10, T0 + 6 * SECOND, LEASE_MS);
            expect(last.map((c) => c.eventId)).toEqual([a3.event.id]);
          });

          it('orders the events of one batch, and leaves unordered subscriptions and the callback alone', async () => {
            const ordered = await addSubscription(acme.id, { ordering: 'document' });
            const plain = await addSubscription(acme.id, { target_url: 'https://your-app.com/plain' });
            await store.putCallback(callbackRow(acme.id));
            const results = await store.publishEvents(
              [1, 2, 3].map((n) => ({
                accountId: acme.id,
                type: 'document.signed',
                dataJson: doc('doc_A'),
                documentId: 'doc_A',
                occurredAt: T0 + n,
              })),
              T0,
            );
            const claimed = await store.claimDueDeliveries('worker-a', 50, T0, LEASE_MS);
            const toOrdered = claimed.filter((c) => c.subscriptionId === ordered.id);
            expect(toOrdered.map((c) => c.eventId)).toEqual([results[0]?.ok ? results[0].event.id : '']);
            expect(claimed.filter((c) => c.subscriptionId === plain.id)).toHaveLength(3);
            expect(claimed.filter((c) => c.subscriptionId === null)).toHaveLength(3);
          });

          it('refuses a manual redelivery of a waiting delivery, and releases waiting ones when ordering is turned off', async () => {
            const sub = await addSubscription(acme.id, { ordering: 'document' });
            await publishDoc('doc_A', T0);
            const second = await publishDoc('doc_A', T0 + 1);
            const [waiting] = await deliveriesOf(acme.id, second.event.id);
            expect(await store.requestRedelivery(acme.id, (waiting as Delivery).id, T0 + 2)).toBe('waiting');
            await store.updateSubscription(acme.id, sub.id, { ordering: 'none' }, T0 + 3);
            expect((await subscription(sub.id)).ordering).toBe('none');
            expect(await statusOf(second.event.id)).toBe('pending');
            expect(await store.claimDueDeliveries('worker-a', 10, T0 + 3, LEASE_MS)).toHaveLength(2);
          });

          it('cancels waiting deliveries with their subscription', async () => {
            const sub = await addSubscription(acme.id, { ordering: 'document' });
            await publishDoc('doc_A', T0);
            const second = await publishDoc('doc_A', T0 + 1);
            expect(await store.deleteSubscription(acme.id, sub.id, T0 + 2)).toBe(true);
            expect(await statusOf(second.event.id)).toBe('cancelled');
          });

          it('gives a paused subscription its next delivery held, not pending', async () => {
            const sub = await addSubscription(acme.id, { ordering: 'document' });
            const first = await publishDoc('doc_A', T0);
            const second = await publishDoc('doc_A', T0 + 1);
            const [claimed] = await store.claimDueDeliveries('worker-a', 10, T0 + 2, LEASE_MS);
            await store.updateSubscription(acme.id, sub.id, { status: 'paused' }, T0 + 3);
            await store.recordAttempts(
              'worker-a',
              [result(claimed as ClaimedDelivery, 'delivered', T0 + 4)],
              T0 + 4,
              SETTINGS,
            );
            expect(await statusOf(first.event.id)).toBe('delivered');
            expect(await statusOf(second.event.id)).toBe('held');
            await store.updateSubscription(acme.id, sub.id, { status: 'active' }, T0 + 5);
            expect((await store.claimDueDeliveries('worker-a', 10, T0 + 5, LEASE_MS)).map((c) => c.eventId)).toEqual([
              second.event.id,
            ]);
          });
        });

        describe('throttling', () => {
          it('gives a throttled subscription evenly spaced send slots and hands the rest back without an attempt', async () => {
            const slow = await addSubscription(acme.id, { rate_limit_per_second: 4 });
            const fast = await addSubscription(acme.id, { target_url: 'https://your-app.com/fast' });
            for (let i = 0; i < 6; i++) await publish({ accountId: acme.id }, T0);
            const first = await store.claimDueDeliveries('worker-a', 50, T0, LEASE_MS);
            // The unthrottled subscription gets all six at once; the throttled one only what fits
            // in the next 250 ms at 4/s: one slot (a slot is 1/4 s, widened by PACE_FACTOR).
            const step = slotMicros(4) / 1000;
            expect(step).toBe(275);
            expect(first.filter((c) => c.subscriptionId === fast.id)).toHaveLength(6);
            const slowClaimed = first.filter((c) => c.subscriptionId === slow.id);
            expect(slowClaimed).toHaveLength(1);
            expect(slowClaimed[0]?.notBefore).toBe(T0);
            const left = (await store.listDeliveries(acme.id, { limit: 50, subscriptionId: slow.id })).items.filter(
              (d) => d.status === 'pending',
            );
            expect(left).toHaveLength(5);
            for (const d of left)
              expect(d).toMatchObject({ attempt_count: 0, next_attempt_at: T0 + step, lease_owner: null });
            expect(await store.listAttempts(ids(left))).toEqual([]);
            expect(await store.claimDueDeliveries('worker-a', 50, T0 + step - 1, LEASE_MS)).toEqual([]);
            expect(await store.claimDueDeliveries('worker-a', 50, T0 + step, LEASE_MS)).toHaveLength(1);
          });

          it('shares one budget between stores on the same database, slot after slot', async () => {
            await addSubscription(acme.id, { rate_limit_per_second: 100 });
            for (let i = 0; i < 30; i++) await publish({ accountId: acme.id }, T0);
            const second = await openStore(openDialect(parseDatabaseUrl(database.url)));
            try {
              const a = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
              const b = await second.claimDueDeliveries('worker-b', 10, T0, LEASE_MS);
              // 11 ms a slot: a takes 10 slots from T0, b the next 10, c what is left of the
              // 250 ms horizon (220, 231 and 242 ms).
              const step = slotMicros(100) / 1000;
              expect(step).toBe(11);
              const slots = [...a, ...b].map((c) => c.notBefore);
              expect(slots).toEqual(Array.from({ length: 20 }, (_, i) => T0 + i * step));
              const c = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
              expect(c.map((d) => d.notBefore)).toEqual([20, 21, 22].map((i) => T0 + i * step));
            } finally {
              await second.close();
            }
          });

          it('shows and changes the limit, and lifting it frees the backlog', async () => {
            const sub = await addSubscription(acme.id, { rate_limit_per_second: 1 });
            for (let i = 0; i < 3; i++) await publish({ accountId: acme.id }, T0);
            expect(await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS)).toHaveLength(1);
            await store.updateSubscription(acme.id, sub.id, { rateLimitPerSecond: null }, T0 + 1);
            expect((await subscription(sub.id)).rate_limit_per_second).toBeNull();
            // The two handed back are due at the next slot (1.1 s on), then go at once.
            expect(await store.claimDueDeliveries('worker-a', 10, T0 + 1099, LEASE_MS)).toEqual([]);
            expect(await store.claimDueDeliveries('worker-a', 10, T0 + 1100, LEASE_MS)).toHaveLength(2);
          });
        });

        describe('operational events', () => {
          async function watcher(types = 'delivery.failed subscription.disabled') {
            return addSubscription(acme.id, { target_url: 'https://ops.example.com/hooks', event_types: types });
          }
          const dataOf = (e: EventRecord) => JSON.parse(e.dataJson) as Record<string, unknown>;
          const opsEvents = async () =>
            (await store.listEvents(acme.id, { limit: 50 })).items.filter((e) => !e.type.startsWith('document.'));

          it("reports a 410 as delivery.failed and subscription.disabled to the account's other subscriptions only", async () => {
            const gone = await addSubscription(acme.id, {
              event_types: 'document.signed delivery.failed subscription.disabled',
            });
            const ops = await watcher();
            await store.putCallback(callbackRow(acme.id));
            const { event } = await publish({ accountId: acme.id }, T0);
            const claimed = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
            const toGone = claimed.find((c) => c.subscriptionId === gone.id) as ClaimedDelivery;
            const outcome = await store.recordAttempts('worker-a', [result(toGone, 'gone', T0 + 1)], T0 + 1, SETTINGS);
            expect(outcome.disabled.map((d) => d.id)).toEqual([gone.id]);
            expect(outcome.queued).toBe(2);

            const made = await opsEvents();
            expect(made.map((e) => e.type).sort()).toEqual(['delivery.failed', 'subscription.disabled']);
            const failed = made.find((e) => e.type === 'delivery.failed') as EventRecord;
            expect(dataOf(failed)).toEqual({
              subscription_id: gone.id,
              target_url: gone.target_url,
              reason: 'the receiver answered 410 Gone',
              delivery_id: toGone.id,
              event_id: event.id,
              event_type: 'document.signed',
              attempts: 1,
            });
            const disabled = made.find((e) => e.type === 'subscription.disabled') as EventRecord;
            expect(dataOf(disabled)).toEqual({
              subscription_id: gone.id,
              target_url: gone.target_url,
              reason: 'the receiver answered 410 Gone',
            });
            for (const e of made) {
              // To the watcher only: never to the subscription it is about, nor to the callback.
              expect((await deliveriesOf(acme.id, e.id)).map((d) => d.subscription_id)).toEqual([ops.id]);
            }
          });

          it('reports a delivery whose retries ran out, and none for retries, manual one-offs or its own failures', async () => {
            const sub = await addSubscription(acme.id);
            await watcher('delivery.failed');
            await publish({ accountId: acme.id }, T0);
            const [first] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
            await store.recordAttempts(
              'worker-a',
              [result(first as ClaimedDelivery, 'retry', T0 + 1, { nextAttemptAt: T0 + SECOND })],
              T0 + 1,
              SETTINGS,
            );
            expect(await opsEvents()).toEqual([]);
            const [second] = await store.claimDueDeliveries('worker-a', 10, T0 + SECOND, LEASE_MS);
            await store.recordAttempts(
              'worker-a',
              [result(second as ClaimedDelivery, 'failed', T0 + SECOND, { statusCode: 500 })],
              T0 + SECOND,
              SETTINGS,
            );
            const made = await opsEvents();
            expect(made).toHaveLength(1);
            expect(dataOf(made[0] as EventRecord)).toMatchObject({
              subscription_id: sub.id,
              reason: 'its retries ran out; the last attempt got HTTP 500',
              attempts: 2,
            });
            // The watcher's own delivery of it fails for good: that makes no further event.
            const [report] = await store.claimDueDeliveries('worker-a', 10, T0 + 2 * SECOND, LEASE_MS);
            expect(report?.event.type).toBe('delivery.failed');
            await store.recordAttempts(
              'worker-a',
              [result(report as ClaimedDelivery, 'failed', T0 + 2 * SECOND)],
              T0 + 2 * SECOND,
              SETTINGS,
            );
            // A manual one-off on the failed delivery fails again: nothing new either.
            const [failedDelivery] = await deliveriesOf(acme.id, (second as ClaimedDelivery).eventId);
            await store.requestRedelivery(acme.id, (failedDelivery as Delivery).id, T0 + 3 * SECOND);
            const [oneOff] = await store.claimDueDeliveries('worker-a', 10, T0 + 3 * SECOND, LEASE_MS);
            expect(oneOff?.oneOff).toBe(true);
            await store.recordAttempts(
              'worker-a',
              [result(oneOff as ClaimedDelivery, 'failed', T0 + 3 * SECOND)],
              T0 + 3 * SECOND,
              SETTINGS,
            );
            expect(await opsEvents()).toHaveLength(1);
          });

          it('reports nothing for a result whose lease was taken over', async () => {
            await addSubscription(acme.id);
            await watcher('delivery.failed');
            await publish({ accountId: acme.id }, T0);
            const [lost] = await store.claimDueDeliveries('worker-a', 10, T0, LEASE_MS);
            const [taken] = await store.claimDueDeliveries('worker-b', 10, T0 + LEASE_MS, LEASE_MS);
            expect(taken?.id).toBe(lost?.id);
            await store.recordAttempts(
              'worker-a',
              [result(lost as ClaimedDelivery, 'failed', T0 + LEASE_MS)],
              T0 + LEASE_MS,
              SETTINGS,
            );
            expect(await opsEvents()).toEqual([]);
            await store.recordAttempts(
              'worker-b',
              [result(taken as ClaimedDelivery, 'failed', T0 + LEASE_MS)],
              T0 + LEASE_MS,
              SETTINGS,
            );
            expect(await opsEvents()).toHaveLength(1);
          });
        });
      });

      describe('portal figures', () => {
        const MINUTE = 60 * SECOND;
        const DAY = 24 * HOUR;
        const M0 = T0 - (T0 % MINUTE);

        /** Publishes `count` events to a fresh subscription of the account; `owner` claims their deliveries. */
        async function claimedFor(account: Account, owner: string, count: number, now: number) {
          const sub = await addSubscription(account.id, { target_url: `https://your-app.com/${newId('sub')}` });
          for (let i = 0; i < count; i++) await publish({ accountId: account.id, onlySubscriptionId: sub.id }, now);
          const claimed = await store.claimDueDeliveries(owner, 100, now, LEASE_MS);
          expect(claimed).toHaveLength(count);
          return { sub, claimed: claimed as [ClaimedDelivery, ...ClaimedDelivery[]] };
        }

        /** A second connection to the same database, for what the Store does not expose. */
        async function inspect<T>(work: (db: ReturnType<typeof openDialect>['db']) => Promise<T>): Promise<T> {
          const inspector = openDialect(parseDatabaseUrl(database.url));
          try {
            return await work(inspector.db);
          } finally {
            await inspector.close();
          }
        }

        it('adds every recorded attempt to its account’s minute, one row per process, summed when read', async () => {
          const { claimed: a } = await claimedFor(acme, 'worker-a', 4, T0);
          const later = { nextAttemptAt: T0 + 100 * DAY };
          await store.recordAttempts(
            'worker-a',
            [
              result(a[0], 'delivered', T0),
              result(a[1] as ClaimedDelivery, 'retry', T0 + 1, later),
              result(a[2] as ClaimedDelivery, 'failed', M0 + MINUTE + 5),
              result(a[3] as ClaimedDelivery, 'gone', T0 + 2),
            ],
            M0 + MINUTE + 10,
            SETTINGS,
          );
          const { claimed: b } = await claimedFor(acme, 'worker-b', 2, T0);
          await store.recordAttempts(
            'worker-b',
            [result(b[0], 'delivered', M0 + MINUTE - 1), result(b[1] as ClaimedDelivery, 'delivered', M0 + MINUTE)],
            M0 + MINUTE,
            SETTINGS,
          );
          const { claimed: g } = await claimedFor(other, 'worker-a', 1, T0);
          await store.recordAttempts('worker-a', [result(g[0], 'delivered', T0)], T0, SETTINGS);

          expect(await store.attemptsPerMinute(acme.id, M0 - MINUTE, M0 + 10 * MINUTE)).toEqual([
            { minute: M0, delivered: 2, failed: 2 },
            { minute: M0 + MINUTE, delivered: 1, failed: 1 },
          ]);
          expect(await store.attemptsPerMinute(other.id, M0 - MINUTE, M0 + 10 * MINUTE)).toEqual([
            { minute: M0, delivered: 1, failed: 0 },
          ]);
          // The window is [since, until).
          expect(await store.attemptsPerMinute(acme.id, M0 + MINUTE, M0 + 2 * MINUTE)).toEqual([
            { minute: M0 + MINUTE, delivered: 1, failed: 1 },
          ]);
          expect(await store.attemptsPerMinute(acme.id, M0, M0 + MINUTE)).toEqual([
            { minute: M0, delivered: 2, failed: 2 },
          ]);

          // A later batch of the same process adds to that process's row of the minute.
          const { claimed: c } = await claimedFor(acme, 'worker-a', 1, T0);
          await store.recordAttempts('worker-a', [result(c[0], 'failed', T0 + 30)], T0 + 30, SETTINGS);
          const rows = await inspect((db) =>
            db
              .selectFrom('attempt_stats')
              .select(['node', 'delivered', 'failed'])
              .where('account_id', '=', acme.id)
              .where('minute', '=', M0)
              .orderBy('node')
              .execute(),
          );
          expect(rows).toEqual([
            { node: 'worker-a', delivered: 1, failed: 3 },
            { node: 'worker-b', delivered: 1, failed: 0 },
          ]);
          expect((await store.attemptsPerMinute(acme.id, M0, M0 + MINUTE))[0]).toEqual({
            minute: M0,
            delivered: 2,
            failed: 3,
          });
        });

        it('deletes the per-minute figures older than 8 days at a heartbeat and keeps the rest', async () => {
          expect(ATTEMPT_STATS_KEEP_MS).toBe(8 * DAY);
          const { claimed } = await claimedFor(acme, 'worker-a', 2, T0);
          await store.recordAttempts(
            'worker-a',
            [result(claimed[0], 'delivered', T0), result(claimed[1] as ClaimedDelivery, 'failed', M0 + 2 * MINUTE)],
            M0 + 2 * MINUTE,
            SETTINGS,
          );
          await store.registerNode({ id: 'n1', kind: 'serve', hostname: 'h', pid: 1, startedAt: T0, heartbeatAt: T0 });
          const both = [
            { minute: M0, delivered: 1, failed: 0 },
            { minute: M0 + 2 * MINUTE, delivered: 0, failed: 1 },
          ];
          expect(await store.heartbeatNode('n1', M0 + 8 * DAY)).toBe(true);
          expect(await store.attemptsPerMinute(acme.id, 0, M0 + DAY)).toEqual(both);
          expect(await store.heartbeatNode('n1', M0 + 8 * DAY + MINUTE)).toBe(true);
          expect(await store.attemptsPerMinute(acme.id, 0, M0 + DAY)).toEqual([both[1]]);
          // A process whose row is gone still does the chore before it registers again.
          expect(await store.heartbeatNode('gone', M0 + 8 * DAY + 3 * MINUTE)).toBe(false);
          expect(await store.attemptsPerMinute(acme.id, 0, M0 + DAY)).toEqual([]);
        });

        it('counts the deliveries created since a time by their status now, every status present', async () => {
          const a = await addSubscription(acme.id, { target_url: 'https://your-app.com/a' });
          const b = await addSubscription(acme.id, { target_url: 'https://your-app.com/b' });
          const c = await addSubscription(acme.id, { target_url: 'https://your-app.com/c' });
          // Ids carry the clock's time, not the `now` given, so this test runs on the clock.
          await publish({ accountId: acme.id, onlySubscriptionId: a.id }, Date.now());
          const [early] = (await store.listDeliveries(acme.id, { limit: 1 })).items;
          const cut = decodeTime((early as Delivery).id.slice(4)) + 1;
          while (Date.now() < cut) await new Promise((resolve) => setTimeout(resolve, 1));

          for (let i = 0; i < 3; i++) await publish({ accountId: acme.id, onlySubscriptionId: a.id }, Date.now());
          const claimed = await store.claimDueDeliveries('worker-a', 10, Date.now(), LEASE_MS);
          const [first, d1, d2] = claimed;
          if (claimed.length !== 4 || !first || !d1 || !d2) throw new Error('expected to claim four deliveries');
          await store.recordAttempts(
            'worker-a',
            [
              result(first, 'delivered', Date.now()),
              result(d1, 'delivered', Date.now()),
              result(d2, 'failed', Date.now()),
            ],
            Date.now(),
            SETTINGS,
          );
          await publish({ accountId: acme.id, onlySubscriptionId: a.id }, Date.now());
          for (let i = 0; i < 2; i++) await publish({ accountId: acme.id, onlySubscriptionId: b.id }, Date.now());
          await store.updateSubscription(acme.id, b.id, { status: 'paused' }, Date.now());
          await publish({ accountId: acme.id, onlySubscriptionId: c.id }, Date.now());
          await store.deleteSubscription(acme.id, c.id, Date.now());
          const g = await addSubscription(other.id);
          await publish({ accountId: other.id, onlySubscriptionId: g.id }, Date.now());

          expect(await store.deliveryCountsSince(acme.id, cut, 100)).toEqual({
            counts: {
              pending: 1,
              sending: 1,
              delivered: 1,
              failed: 1,
              held: 2,
              cancelled: 1,
              waiting: 0,
              postponed: 0,
            },
            complete: true,
          });
          expect((await store.deliveryCountsSince(acme.id, cut - 1, 100)).counts.delivered).toBe(2);
          expect(await store.deliveryCountsSince(acme.id, Date.now() + HOUR, 100)).toEqual({
            counts: {
              pending: 0,
              sending: 0,
              delivered: 0,
              failed: 0,
              held: 0,
              cancelled: 0,
              waiting: 0,
              postponed: 0,
            },
            complete: true,
          });
          expect((await store.deliveryCountsSince(other.id, cut, 100)).counts).toMatchObject({ pending: 1 });
          // A window holding more than the cap counts its newest deliveries only, and says so: the
          // two newest are the deleted subscription's (cancelled) and a paused one's (held).
          expect(await store.deliveryCountsSince(acme.id, cut, 2)).toEqual({
            counts: {
              pending: 0,
              sending: 0,
              delivered: 0,
              failed: 0,
              held: 1,
              cancelled: 1,
              waiting: 0,
              postponed: 0,
            },
            complete: false,
          });

          if (dialect.name === 'sqlite') {
            // A range on (account_id, id): neither an index on created_at nor a scan of the table.
            const plan = await inspect(async (db) => {
              const query = deliveryCountsQuery(db, acme.id, cut, 100).compile();
              const explained = await db.executeQuery<{ detail: string }>(
                CompiledQuery.raw(`explain query plan ${query.sql}`, [...query.parameters]),
              );
              return explained.rows.map((r) => r.detail).join('\n');
            });
            expect(plan).toContain('SEARCH deliveries USING INDEX deliveries_account (account_id=? AND id>?)');
          }
        });

        it('lists the live subscriptions that need attention: disabled first, then the longest failing', async () => {
          const sub = (name: string, overrides: Partial<Subscription>) =>
            addSubscription(acme.id, { target_url: `https://your-app.com/${name}`, ...overrides });
          await sub('healthy', {});
          await sub('paused', { status: 'paused' });
          const failingLater = await sub('failing-later', { failing_since: T0 + 2 * HOUR });
          const failingLonger = await sub('failing-longer', { failing_since: T0 + HOUR });
          const disabledFailing = await sub('disabled-failing', {
            status: 'disabled',
            disabled_reason: 'the receiver answered 410 Gone',
            failing_since: T0 + 3 * HOUR,
          });
          const disabled = await sub('disabled', { status: 'disabled', disabled_reason: 'by hand' });
          const deleted = await sub('deleted', { status: 'disabled', failing_since: T0 });
          await store.deleteSubscription(acme.id, deleted.id, T0 + 4 * HOUR);
          await addSubscription(other.id, { status: 'disabled', failing_since: T0 });

          const all = await store.subscriptionsNeedingAttention(acme.id, 20);
          expect(all.total).toBe(4);
          expect(ids(all.subscriptions)).toEqual([disabledFailing.id, disabled.id, failingLonger.id, failingLater.id]);
          expect(all.subscriptions[0]).toEqual(disabledFailing);
          const some = await store.subscriptionsNeedingAttention(acme.id, 3);
          expect(some.total).toBe(4);
          expect(ids(some.subscriptions)).toEqual([disabledFailing.id, disabled.id, failingLonger.id]);
          const initech = await store.ensureAccount('initech', T0);
          expect(await store.subscriptionsNeedingAttention(initech.id, 20)).toEqual({ total: 0, subscriptions: [] });
        });

        it('finds the latest delivery of each subscription, only of the account’s own', async () => {
          const a = await addSubscription(acme.id, { target_url: 'https://your-app.com/a' });
          const b = await addSubscription(acme.id, { target_url: 'https://your-app.com/b' });
          const quiet = await addSubscription(acme.id, { target_url: 'https://your-app.com/quiet' });
          const theirs = await addSubscription(other.id);
          await publish({ accountId: acme.id, onlySubscriptionId: a.id }, T0);
          await publish({ accountId: acme.id, onlySubscriptionId: b.id }, T0 + SECOND);
          const { event } = await publish({ accountId: acme.id, onlySubscriptionId: a.id }, T0 + 2 * SECOND);
          await publish({ accountId: other.id, onlySubscriptionId: theirs.id }, T0);
          const [latestOfA] = await deliveriesOf(acme.id, event.id);
          const [onlyOfB] = (await store.listDeliveries(acme.id, { limit: 1, subscriptionId: b.id })).items;

          const latest = await store.latestDeliveries(acme.id, [a.id, b.id, quiet.id, theirs.id, 'sub_unknown']);
          expect([...latest.keys()]).toEqual([a.id, b.id]);
          expect(latest.get(a.id)).toEqual(latestOfA);
          expect(latest.get(b.id)).toEqual(onlyOfB);
          expect((await store.latestDeliveries(other.id, [theirs.id])).get(theirs.id)?.account_id).toBe(other.id);
          expect((await store.latestDeliveries(acme.id, [])).size).toBe(0);
        });
      });
    });
  });
});

describe('SQLite WAL checkpoints', () => {
  it('reports a checkpoint thread that cannot work, so the dialect can fall back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-wal-'));
    try {
      const failure = new Promise<Error>((resolve) => {
        startCheckpointer(join(dir, 'missing.db'), resolve);
      });
      const err = await failure;
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toMatch(/^WAL checkpoint thread: SQLITE_CANTOPEN/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * Whether every frame of the WAL has been copied back into the database, as the WAL index (the
   * -shm file) says: its header's mxFrame (offset 16) against the checkpoint info's nBackfill
   * (offset 96), both 32-bit in the machine's byte order. Reading it checkpoints nothing.
   */
  function walCopied(path: string): boolean {
    const header = Buffer.alloc(100);
    const fd = openSync(`${path}-shm`, 'r');
    try {
      readSync(fd, header, 0, 100, 0);
    } finally {
      closeSync(fd);
    }
    const u32 = (at: number) => (endianness() === 'LE' ? header.readUInt32LE(at) : header.readUInt32BE(at));
    return u32(96) >= u32(16);
  }

  /**
   * Writes 256 KiB transactions, each once the checkpoint thread has copied the last one back (so
   * paced by the thread, not by the clock: a loaded machine only makes it slower), until the WAL
   * file has stopped growing for 20 of them. Each then starts the WAL over; left alone, with no
   * thread and automatic checkpoints off, the WAL would grow by every one, and the wait for the
   * thread would time out. Returns the rows written.
   */
  async function writeUntilCheckpointed(dialect: ReturnType<typeof openDialect>, path: string): Promise<number> {
    const body = 'x'.repeat(4000);
    let written = 0;
    let flat = 0;
    let walBytes = 0;
    while (flat < 20) {
      await dialect.writeTransaction(async (trx) => {
        for (let i = 0; i < 64; i++) await sql`insert into filler (body) values (${body})`.execute(trx);
      });
      written += 64;
      const size = statSync(`${path}-wal`).size;
      flat = size > walBytes ? 0 : flat + 1;
      walBytes = Math.max(walBytes, size);
      const deadline = Date.now() + 20_000;
      while (!walCopied(path)) {
        if (Date.now() > deadline) throw new Error('the checkpoint thread copied nothing back within 20 s');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    return written;
  }

  it('are made by the background thread: automatic ones are off, yet the WAL is reused, not grown', {
    timeout: 30_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-wal-'));
    const path = join(dir, 'wal.db');
    const dialect = openDialect(parseDatabaseUrl(path));
    try {
      await dialect.db.schema.createTable('filler').addColumn('body', 'text').execute();
      const automatic = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(dialect.db);
      expect(automatic.rows[0]?.wal_autocheckpoint).toBe(0);
      const written = await writeUntilCheckpointed(dialect, path);
      const count = await sql<{ n: number }>`select count(*) as n from filler`.execute(dialect.db);
      expect(count.rows[0]?.n).toBe(written);
    } finally {
      await dialect.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the WAL bounded under writes that never pause, and loses none of them', { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-wal-'));
    const path = join(dir, 'wal.db');
    const dialect = openDialect(parseDatabaseUrl(path));
    try {
      await dialect.db.schema
        .createTable('filler')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('n', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('body', 'text')
        .execute();
      await writeUntilCheckpointed(dialect, path);
      // Then back-to-back transactions, each changing 16 rows of a page each (the file stays
      // small), until ten times the restart threshold has gone through the WAL. Checkpoints alone
      // never find a moment with every frame copied, so without the restart handshake the WAL
      // grows by every transaction to about the total written; with it, to the threshold plus what
      // is written while the thread's report and its catch-up lag behind.
      const limit = RESTART_AT_FRAMES * (4096 + 24);
      let updates = 0;
      let largest = 0;
      while (updates * 4096 < 10 * limit) {
        await dialect.writeTransaction(async (trx) => {
          for (let i = 0; i < 16; i++) {
            await sql`update filler set n = n + 1 where id = ${1 + ((updates + i) % 256)}`.execute(trx);
          }
        });
        updates += 16;
        largest = Math.max(largest, statSync(`${path}-wal`).size);
      }
      expect(largest).toBeGreaterThan(0);
      expect(largest).toBeLessThan(4 * limit);
      const sum = await sql<{ total: number }>`select sum(n) as total from filler`.execute(dialect.db);
      expect(sum.rows[0]?.total).toBe(updates);
    } finally {
      await dialect.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
