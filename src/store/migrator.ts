// Versioned migrations, run at start and by `countersign migrate`. Kysely's Migrator takes a lock
// before it reads what has run (a transaction-scoped advisory lock on PostgreSQL), so two processes
// starting at once apply each migration exactly once.
import { type Kysely, type Migration, Migrator } from 'kysely';
import * as initial from './migrations/001_initial.js';

const MIGRATIONS: Record<string, Migration> = {
  '001_initial': initial,
};

// biome-ignore lint/suspicious/noExplicitAny: the migrator works below the typed schema.
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => MIGRATIONS },
    migrationTableName: 'countersign_migrations',
    migrationLockTableName: 'countersign_migration_lock',
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
