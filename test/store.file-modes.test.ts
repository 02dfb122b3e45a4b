// The SQLite files countersign makes are its owner's alone: the database, its -wal and its -shm.
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';

const modeOf = (file: string) => statSync(file).mode & 0o777;

describe('SQLite file modes', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function openAt(file: string) {
    const store = await openStore(openDialect(parseDatabaseUrl(file)));
    // A write, so the -wal and -shm files exist.
    await store.ensureAccount('acme', Date.now());
    return store;
  }

  it('makes a new database, its -wal and its -shm readable by their owner only, whatever the umask', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-modes-'));
    dirs.push(dir);
    const file = join(dir, 'nested', 'countersign.db');
    const umask = process.umask(0o000);
    try {
      const store = await openAt(file);
      try {
        for (const f of [file, `${file}-wal`, `${file}-shm`]) {
          expect(existsSync(f), f).toBe(true);
          expect(modeOf(f).toString(8), f).toBe('600');
        }
      } finally {
        await store.close();
      }
    } finally {
      process.umask(umask);
    }
  });

  it('leaves the mode of a database file that already exists as its operator set it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-modes-'));
    dirs.push(dir);
    const file = join(dir, 'countersign.db');
    writeFileSync(file, '');
    chmodSync(file, 0o640);
    const store = await openAt(file);
    try {
      expect(modeOf(file).toString(8)).toBe('640');
    } finally {
      await store.close();
    }
  });
});
