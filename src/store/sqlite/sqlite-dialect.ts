// SQLite through better-sqlite3: WAL, one writer, BEGIN IMMEDIATE write transactions. One
// connection serves the whole process; other processes (the CLI) share the file through WAL.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql, type Transaction } from 'kysely';
import type { StoreDialect } from '../dialect.js';
import { GenerationCache } from '../generation-cache.js';
import type { Database } from '../schema.js';
import { RESTART_AT_FRAMES, startCheckpointer } from './checkpointer.js';
import { rewriteFile } from './rewrite.js';

const STATEMENT_CACHE_SIZE = 256;

/**
 * Kysely prepares every query afresh; SQLite's parse-and-plan then costs more than running the
 * statement. Our queries come from a small set of shapes, so prepared statements are reused by SQL
 * text, in a cache of two generations that a hit does not write to (generation-cache.ts). Safe
 * because Kysely runs each statement to completion synchronously (we never stream), so a statement
 * is never in use twice at once.
 */
function withStatementCache(database: BetterSqlite3.Database) {
  const cache = new GenerationCache<string, BetterSqlite3.Statement>(STATEMENT_CACHE_SIZE);
  return {
    prepare(text: string) {
      let statement = cache.get(text);
      if (!statement) {
        statement = database.prepare(text);
        cache.set(text, statement);
      }
      return statement;
    },
    close() {
      cache.clear();
      database.close();
    },
  };
}

/**
 * A new database file is made readable by its owner only (0600) before SQLite opens it: it holds
 * every event and, sealed, every secret. SQLite gives the -wal and -shm files it makes the mode of
 * the database file, so they are 0600 too. An existing file keeps the mode its operator gave it.
 */
function createPrivately(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** How long opening waits for another process that is setting up the same new file. */
const OPEN_BUSY_MS = 5_000;

/**
 * Switches the file to WAL. On a new file that another process is setting up at the same moment
 * (a serve and a worker started together), SQLite answers SQLITE_BUSY at once rather than call
 * the busy handler, so the switch is tried again, briefly, for up to OPEN_BUSY_MS: this runs once,
 * at start, before anything else uses the connection.
 */
function enableWal(database: BetterSqlite3.Database): void {
  const deadline = Date.now() + OPEN_BUSY_MS;
  for (;;) {
    try {
      database.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

export function openSqlite(path: string, warn?: (err: Error, message: string) => void): StoreDialect {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true });
    createPrivately(path);
  }
  const database = new BetterSqlite3(path);
  enableWal(database);
  // NORMAL in WAL mode: a commit survives a process crash; only an OS crash or power loss can
  // take back the last transactions.
  database.pragma('synchronous = NORMAL');
  database.pragma('busy_timeout = 5000');
  database.pragma('foreign_keys = ON');
  database.pragma('cache_size = -16384');
  // Statement journals (SQLite's undo for one statement inside a transaction) otherwise spill to a
  // temporary file once they pass 64 KiB: a create, write and unlink on disk, in the middle of a
  // commit on our one event loop. strace showed about a dozen a second at 1,000 events/s.
  database.pragma('temp_store = MEMORY');
  // When the WAL starts over, a file grown past this is cut back to it (see checkpointer.ts).
  database.pragma(`journal_size_limit = ${RESTART_AT_FRAMES * 4096}`);
  // Checkpoints run on their own thread (checkpointer.ts), not inside whichever commit fills the
  // WAL; should that thread fail, SQLite's automatic checkpoints take over again.
  const checkpointer =
    path === ':memory:'
      ? undefined
      : startCheckpointer(path, (err) => {
          if (database.open) database.pragma('wal_autocheckpoint = 1000');
          warn?.(err, 'the WAL checkpoint thread failed; SQLite checkpoints automatically again');
        });
  if (checkpointer) database.pragma('wal_autocheckpoint = 0');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
  const dataVersion = database.prepare('pragma data_version').pluck();
  /** Resolves once no query of ours holds the connection (Kysely's single-connection mutex). */
  const idle = () => db.connection().execute(async () => {});
  let marker = 0;
  let markerReadAt = Number.NEGATIVE_INFINITY;
  // Prepared on first use: the table exists only once migrations have run.
  let fanOutVersion: BetterSqlite3.Statement | undefined;

  return {
    name: 'sqlite',
    db,
    async writeTransaction<T>(work: (trx: Transaction<Database> | Kysely<Database>) => Promise<T>): Promise<T> {
      // connection() holds Kysely's single-connection mutex for the whole callback, so nothing
      // else from this process interleaves with the transaction.
      const gate = checkpointer?.beforeWrite(idle);
      if (gate) await gate;
      return db.connection().execute(async (conn) => {
        await sql`begin immediate`.execute(conn);
        try {
          const result = await work(conn);
          await sql`commit`.execute(conn);
          return result;
        } catch (err) {
          if (database.inTransaction) await sql`rollback`.execute(conn);
          throw err;
        }
      });
    },
    async rebuildFile() {
      // On the checkpoint thread, so the event loop goes on meanwhile; without it (a file in
      // memory, a thread that failed), on this connection as before.
      return checkpointer?.working() ? checkpointer.rebuild((run) => db.connection().execute(run)) : rewriteFile(db);
    },
    async notifyDue() {},
    async notifyTokensChanged() {},
    changeMarker() {
      // Changes when another connection (the CLI, another process) commits; our own writes do not
      // change it, and our own token changes clear the cache directly. Reading it costs a trip
      // through SQLite's WAL index, so requests within the same millisecond share one reading: a
      // revocation committed elsewhere counts from the next millisecond on.
      const now = performance.now();
      if (now - markerReadAt >= 1) {
        marker = dataVersion.get() as number;
        markerReadAt = now;
      }
      return marker;
    },
    fanOutVersion() {
      // Inside the publishing transaction (BEGIN IMMEDIATE on our one connection): the number every
      // committed change to subscriptions or callbacks, from any connection, has moved.
      fanOutVersion ??= database.prepare('select version from fan_out_version where id = 1').pluck();
      return fanOutVersion.get() as number;
    },
    async listenDue() {
      return async () => {};
    },
    isUniqueViolation(err) {
      const code = (err as { code?: string })?.code;
      return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
    },
    async close() {
      // The checkpoint thread first: the connection closed last checkpoints and removes the WAL.
      await checkpointer?.stop();
      await db.destroy();
    },
  };
}
