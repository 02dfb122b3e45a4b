// Rebuilding a SQLite file so that nothing deleted or overwritten survives in it (erasure.ts):
// rows changed in place, even with secure_delete, leave older copies in the unused space of pages
// SQLite split or rebalanced earlier, and old page images stay in the WAL until it starts over.
// VACUUM writes every page anew; a TRUNCATE checkpoint then empties the WAL.
import { setTimeout as sleep } from 'node:timers/promises';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../schema.js';

const CHECKPOINT_TRIES = 10;

/**
 * Rebuilds the SQLite file (VACUUM) and truncates its WAL, so neither holds an old copy of what was
 * erased. Both run on the store's one connection while no query of ours can interleave; VACUUM
 * builds its copy in a temporary file rather than in memory (temp_store is MEMORY otherwise), and
 * a short busy timeout keeps a checkpoint that another connection's reader holds up from blocking
 * the event loop: it is tried again a few times instead. Returns what could not be done, if anything.
 */
export async function rewriteFile(db: Kysely<Database>): Promise<string | undefined> {
  const file = await sql<{ file: string }>`select file from pragma_database_list where name = 'main'`.execute(db);
  if (!file.rows[0]?.file) return undefined;
  let vacuumed = false;
  for (let attempt = 1; attempt <= CHECKPOINT_TRIES; attempt++) {
    try {
      const truncated = await db.connection().execute(async (conn) => {
        const timeout = await sql<{ timeout: number }>`pragma busy_timeout`.execute(conn);
        const tempStore = await sql<{ temp_store: number }>`pragma temp_store`.execute(conn);
        await sql`pragma busy_timeout = 50`.execute(conn);
        try {
          if (!vacuumed) {
            await sql`pragma temp_store = file`.execute(conn);
            await sql`vacuum`.execute(conn);
            vacuumed = true;
          }
          const checkpoint = await sql<{ busy: number }>`pragma wal_checkpoint(truncate)`.execute(conn);
          return checkpoint.rows[0]?.busy === 0;
        } finally {
          await sql.raw(`pragma temp_store = ${Number(tempStore.rows[0]?.temp_store ?? 0)}`).execute(conn);
          await sql.raw(`pragma busy_timeout = ${Number(timeout.rows[0]?.timeout ?? 5000)}`).execute(conn);
        }
      });
      if (truncated) return undefined;
    } catch (err) {
      const code = (err as { code?: unknown })?.code;
      if (code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED') {
        return `the SQLite file could not be rebuilt: ${(err as Error).message}; erase again to retry`;
      }
    }
    await sleep(50 * attempt);
  }
  return vacuumed
    ? 'the SQLite WAL could not be truncated (another connection kept reading); old copies may remain in the -wal file until it is: erase again later'
    : 'the SQLite file could not be rebuilt (another connection kept writing); old copies may remain in it: erase again later';
}
