// PostgreSQL through pg: a pool for queries, FOR UPDATE SKIP LOCKED claims (in the store), and a
// dedicated LISTEN connection so a publish on one node wakes the dispatchers on all of them.
import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { StoreDialect } from '../dialect.js';
import type { Database } from '../schema.js';

const DUE_CHANNEL = 'countersign_due';
const TOKENS_CHANNEL = 'countersign_tokens';
const RELISTEN_MS = 1000;

// BIGINT (epoch ms) and COUNT(*) as numbers: our values stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number.parseInt(value, 10));

export function openPostgres(connectionString: string, poolSize = 10): StoreDialect {
  const pool = new pg.Pool({ connectionString, max: poolSize });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  // Bumped by every token change any node announces. While the LISTEN connection is down we cannot
  // hear those, so changeMarker() then returns a new value on every call (no caching at all).
  let tokenVersion = 0;
  let listening = false;
  // Our own announcements carry this, so we do not wake ourselves twice: the store already wakes
  // this process's dispatcher directly after its commits.
  const self = randomBytes(8).toString('hex');

  return {
    name: 'postgres',
    db,
    writeTransaction<T>(work: (trx: Transaction<Database> | Kysely<Database>) => Promise<T>): Promise<T> {
      return db.transaction().execute(work);
    },
    async notifyDue(trx) {
      await sql`select pg_notify(${DUE_CHANNEL}, ${self})`.execute(trx);
    },
    async notifyTokensChanged(trx) {
      await sql`select pg_notify(${TOKENS_CHANNEL}, '')`.execute(trx);
    },
    changeMarker() {
      return listening ? tokenVersion : ++tokenVersion;
    },
    fanOutVersion() {
      // No triggers here (migrations/002_fan_out_version.ts): fan-out is read in the transaction.
      return undefined;
    },
    async listenDue(onDue) {
      let stopped = false;
      let client: pg.Client | undefined;
      let retry: NodeJS.Timeout | undefined;
      // One connection LISTENs on both channels, and comes back by itself after a server restart.
      const connect = async (): Promise<void> => {
        const next = new pg.Client({ connectionString });
        client = next;
        const lost = () => {
          if (client !== next) return;
          listening = false;
          client = undefined;
          next.end().catch(() => {});
          if (!stopped) retry = setTimeout(() => void connect().catch(lost), RELISTEN_MS);
        };
        next.on('error', lost);
        next.on('end', lost);
        next.on('notification', (message) => {
          if (message.channel === TOKENS_CHANNEL) tokenVersion++;
          else if (message.payload !== self) onDue();
        });
        await next.connect();
        await next.query(`LISTEN ${DUE_CHANNEL}; LISTEN ${TOKENS_CHANNEL}`);
        listening = true;
        tokenVersion++;
        // Anything announced while we were away is unknown: look at the queue now.
        onDue();
      };
      await connect();
      return async () => {
        stopped = true;
        listening = false;
        if (retry) clearTimeout(retry);
        const current = client;
        client = undefined;
        await current?.end().catch(() => {});
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
