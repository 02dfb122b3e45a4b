// Secrets at rest: sealed in the database, a 0600 key file made on first start, and a master-key
// rotation (a real child process) that re-seals everything so it opens under the new key only.
import { execFile } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { callbackSeal, SecretBox, subscriptionSeal } from '../src/domain/secret-box.js';
import { loadMasterKey } from '../src/master-key.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import { childEnv, serve } from './helpers/children.js';
import { freePort } from './helpers/cli-process.js';
import { retired, subscriptionRow } from './helpers/store-fixtures.js';

const run = promisify(execFile);

/** A value sealed the way countersign did before values were bound to their rows: no associated data. */
function legacySeal(key: Buffer, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `v1.${new SecretBox(key).keyId}.${iv.toString('base64url')}.${body.toString('base64url')}`;
}
const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

describe('secrets at rest', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the key file with mode 0600 once, and reads the same key afterwards', () => {
    dir = mkdtempSync(join(tmpdir(), 'countersign-key-'));
    const file = join(dir, 'keys', 'master.key');
    const first = loadMasterKey(undefined, file);
    expect(first.origin).toBe('created');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const second = loadMasterKey(undefined, file);
    expect(second.origin).toBe('file');
    expect(second.key.equals(first.key)).toBe(true);
  });

  it('rotate-master-key re-seals every secret so that only the new key opens them', async () => {
    dir = mkdtempSync(join(tmpdir(), 'countersign-rotate-'));
    const dbPath = join(dir, 'countersign.db');
    const keyFile = join(dir, 'master.key');
    const oldKey = loadMasterKey(undefined, keyFile).key;
    const oldBox = new SecretBox(oldKey);
    const store = await openStore(openDialect(parseDatabaseUrl(dbPath)));
    const now = Date.now();
    const account = await store.ensureAccount('acme', now);
    const SUB = { id: 'sub_01J00000000000000000000000', account_id: account.id };
    await store.putCallback({
      account_id: account.id,
      url: 'https://example.com/cb',
      auth_type: 'Basic',
      username: 'user',
      password_sealed: oldBox.seal('cb-password', callbackSeal('password', account.id)),
      bearer_token_sealed: null,
      updated_at: now,
    });
    await store.createSubscription(
      subscriptionRow(account.id, {
        id: SUB.id,
        secret_token_sealed: oldBox.seal('shhh_its_a_secret', subscriptionSeal('secret_token', SUB)),
        signing_secret_sealed: legacySeal(oldKey, 'whsec_c2lnbmluZw=='),
      }),
    );
    await store.close();

    const { stdout } = await run(
      process.execPath,
      [CLI, 'rotate-master-key', '--database', dbPath, '--master-key-file', keyFile],
      {
        env: { ...process.env, COUNTERSIGN_MASTER_KEY: '', COUNTERSIGN_NEW_MASTER_KEY: '' },
      },
    );
    expect(stdout).toContain('re-sealed 3 secrets');
    expect(readFileSync(`${keyFile}.previous`, 'utf8')).not.toBe(readFileSync(keyFile, 'utf8'));
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);

    const newBox = new SecretBox(loadMasterKey(undefined, keyFile).key);
    const dialect = openDialect(parseDatabaseUrl(dbPath));
    try {
      const sub = await dialect.db.selectFrom('subscriptions').selectAll().executeTakeFirstOrThrow();
      const cb = await dialect.db.selectFrom('callbacks').selectAll().executeTakeFirstOrThrow();
      expect(newBox.open(sub.secret_token_sealed as string, subscriptionSeal('secret_token', SUB))).toBe(
        'shhh_its_a_secret',
      );
      // Sealed the old way (unbound) before the rotation: bound to its row now.
      expect(newBox.open(sub.signing_secret_sealed, subscriptionSeal('signing_secret', SUB))).toBe(
        'whsec_c2lnbmluZw==',
      );
      expect(newBox.open(cb.password_sealed as string, callbackSeal('password', account.id))).toBe('cb-password');
      expect(() => oldBox.open(sub.signing_secret_sealed, subscriptionSeal('signing_secret', SUB))).toThrow();
      const raw = await sql<{ text: string }>`select password_sealed as text from callbacks`.execute(dialect.db);
      expect(raw.rows[0]?.text).not.toContain('cb-password');
    } finally {
      await dialect.close();
    }
  });
});

describe('secrets sealed before values were bound to their rows', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('are re-sealed, bound to their rows, when countersign starts, and open only there', async () => {
    dir = mkdtempSync(join(tmpdir(), 'countersign-bind-'));
    const dbPath = join(dir, 'countersign.db');
    const keyFile = join(dir, 'master.key');
    const key = loadMasterKey(undefined, keyFile).key;
    const store = await openStore(openDialect(parseDatabaseUrl(dbPath)));
    const now = Date.now();
    const account = await store.ensureAccount('acme', now);
    const SUB = { id: 'sub_01J00000000000000000000001', account_id: account.id };
    await store.putCallback({
      account_id: account.id,
      url: 'https://example.com/cb',
      auth_type: 'Bearer',
      username: null,
      password_sealed: null,
      bearer_token_sealed: legacySeal(key, 'cb-bearer'),
      updated_at: now,
    });
    await store.createSubscription(
      subscriptionRow(account.id, {
        id: SUB.id,
        secret_token_sealed: legacySeal(key, 'shhh'),
        signing_secret_sealed: legacySeal(key, 'whsec_bmV3'),
        retired_secrets: retired(legacySeal(key, 'whsec_b2xk'), now + 3_600_000),
      }),
    );
    await store.putSettingIfAbsent('master_key_check', legacySeal(key, 'countersign master key check v1'));
    await store.close();

    const server = await serve(
      childEnv({
        PORT: String(await freePort()),
        HOST: '127.0.0.1',
        DATABASE_URL: dbPath,
        COUNTERSIGN_MASTER_KEY_FILE: keyFile,
      }),
    );
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.output.join('\n')).toContain('bound the sealed secrets to their rows');

    const box = new SecretBox(key);
    const dialect = openDialect(parseDatabaseUrl(dbPath));
    try {
      const sub = await dialect.db.selectFrom('subscriptions').selectAll().executeTakeFirstOrThrow();
      const cb = await dialect.db.selectFrom('callbacks').selectAll().executeTakeFirstOrThrow();
      const [retired] = JSON.parse(sub.retired_secrets) as { sealed: string }[];
      const signing = subscriptionSeal('signing_secret', SUB);
      for (const sealed of [
        sub.secret_token_sealed,
        sub.signing_secret_sealed,
        retired?.sealed,
        cb.bearer_token_sealed,
      ]) {
        expect(sealed?.startsWith(`v2.${box.keyId}.`), sealed ?? 'null').toBe(true);
      }
      expect(box.open(sub.secret_token_sealed as string, subscriptionSeal('secret_token', SUB))).toBe('shhh');
      expect(box.open(sub.signing_secret_sealed, signing)).toBe('whsec_bmV3');
      expect(box.open(retired?.sealed as string, signing)).toBe('whsec_b2xk');
      expect(box.open(cb.bearer_token_sealed as string, callbackSeal('bearer_token', account.id))).toBe('cb-bearer');
      // Bound: the subscription's secret does not open as the callback's.
      expect(() => box.open(sub.signing_secret_sealed, callbackSeal('signing_secret', account.id))).toThrow();
    } finally {
      await dialect.close();
    }
  }, 60_000);
});
