// PostgreSQL through pg: a pool for queries, FOR UPDATE SKIP LOCKED claims (in the store), and a
// dedicated LISTEN connection so a publish on one node wakes the dispatchers on all of them.
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { StoreDialect } from '../dialect.js';
import type { Database } from '../schema.js';

const DUE_CHANNEL = 'countersign_due';

// BIGINT (epoch ms) and COUNT(*) as numbers: our values stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number.parseInt(value, 10));

export function openPostgres(connectionString: string, poolSize = 10): StoreDialect {
  const pool = new pg.Pool({ connectionString, max: poolSize });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });

  return {
    name: 'postgres',
    db,
    writeTransaction<T>(work: (trx: Transaction<Database> | Kysely<Database>) => Promise<T>): Promise<T> {
      return db.transaction().execute(work);
    },
    async notifyDue(trx) {
      await sql`select pg_notify(${DUE_CHANNEL}, '')`.execute(trx);
    },
    async listenDue(onDue) {
      const client = new pg.Client({ connectionString });
      client.on('error', () => {});
      client.on('notification', () => onDue());
      await client.connect();
      await client.query(`LISTEN ${DUE_CHANNEL}`);
      return async () => {
        await client.end().catch(() => {});
      };
    },
    isUniqueViolation(err) {
      return (err as { code?: string })?.code === '23505';
    },
    async close() {
      await db.destroy();
    },
  };
}
