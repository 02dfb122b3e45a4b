// Secrets at rest: sealed in the database, a 0600 key file made on first start, and a master-key
// rotation (a real child process) that re-seals everything so it opens under the new key only.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretBox } from '../src/domain/secret-box.js';
import { loadMasterKey } from '../src/master-key.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';

const run = promisify(execFile);
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
    const oldBox = new SecretBox(loadMasterKey(undefined, keyFile).key);
    const store = await openStore(openDialect(parseDatabaseUrl(dbPath)));
    const now = Date.now();
    const account = await store.ensureAccount('acme', now);
    await store.putCallback({
      account_id: account.id,
      url: 'https://example.com/cb',
      auth_type: 'Basic',
      username: 'user',
      password_sealed: oldBox.seal('cb-password'),
      bearer_token_sealed: null,
      updated_at: now,
    });
    await store.createSubscription({
      id: 'sub_01J00000000000000000000000',
      account_id: account.id,
      target_url: 'https://example.com/hook',
      event_types: 'document.signed',
      status: 'active',
      secret_token_sealed: oldBox.seal('shhh_its_a_secret'),
      signing_secret_sealed: oldBox.seal('whsec_c2lnbmluZw=='),
      retired_secrets: '[]',
      disabled_reason: null,
      failing_since: null,
      created_at: now,
      updated_at: now,
      deleted_at: null,
      kind: 'webhook',
      listen_seen_at: null,
      rate_limit_per_second: null,
      ordering: 'none',
    });
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
      expect(newBox.open(sub.secret_token_sealed as string)).toBe('shhh_its_a_secret');
      expect(newBox.open(sub.signing_secret_sealed)).toBe('whsec_c2lnbmluZw==');
      expect(newBox.open(cb.password_sealed as string)).toBe('cb-password');
      expect(() => oldBox.open(sub.signing_secret_sealed)).toThrow();
      const raw = await sql<{ text: string }>`select password_sealed as text from callbacks`.execute(dialect.db);
      expect(raw.rows[0]?.text).not.toContain('cb-password');
    } finally {
      await dialect.close();
    }
  });
});
