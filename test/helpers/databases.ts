// Fresh databases for tests: a new SQLite file in a temp folder, or a new PostgreSQL database
// created next to COUNTERSIGN_TEST_DATABASE_URL and dropped afterwards.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface TestDatabase {
  /** A DATABASE_URL for this database (a file path for SQLite). */
  url: string;
  drop(): Promise<void>;
}

export interface DialectUnderTest {
  name: 'sqlite' | 'postgres';
  /** False when PostgreSQL is not configured; suites use describe.skipIf(!available). */
  available: boolean;
  create(): Promise<TestDatabase>;
}

const PG_ADMIN_URL = process.env.COUNTERSIGN_TEST_DATABASE_URL;

export const sqliteDialect: DialectUnderTest = {
  name: 'sqlite',
  available: true,
  async create() {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-test-'));
    return {
      url: join(dir, 'countersign.db'),
      async drop() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

export const postgresDialect: DialectUnderTest = {
  name: 'postgres',
  available: Boolean(PG_ADMIN_URL),
  async create() {
    if (!PG_ADMIN_URL) throw new Error('COUNTERSIGN_TEST_DATABASE_URL is not set');
    const name = `countersign_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      async drop() {
        const client = new pg.Client({ connectionString: PG_ADMIN_URL });
        await client.connect();
        try {
          await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        } finally {
          await client.end();
        }
      },
    };
  },
};

/** Every dialect; suites run once per entry and skip PostgreSQL (by name) when it is not configured. */
export const DIALECTS: DialectUnderTest[] = [sqliteDialect, postgresDialect];

export function dialectLabel(d: DialectUnderTest): string {
  return d.available ? d.name : `${d.name} (SKIPPED: COUNTERSIGN_TEST_DATABASE_URL not set)`;
}
