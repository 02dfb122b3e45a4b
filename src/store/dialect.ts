// The seam between the store and a database engine: everything SQLite and PostgreSQL do
// differently sits behind this small interface, one folder per dialect.
import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

export type DialectName = 'sqlite' | 'postgres';

export interface StoreDialect {
  readonly name: DialectName;
  readonly db: Kysely<Database>;
  /** Runs `work` in a write transaction (SQLite: BEGIN IMMEDIATE, so a second process waits, not fails). */
  writeTransaction<T>(work: (trx: Transaction<Database> | Kysely<Database>) => Promise<T>): Promise<T>;
  /** Tells other processes that new deliveries are due (PostgreSQL NOTIFY; a no-op on SQLite). */
  notifyDue(trx: Kysely<Database>): Promise<void>;
  /** Tells other processes that API tokens changed (PostgreSQL NOTIFY; SQLite needs nothing). */
  notifyTokensChanged(trx: Kysely<Database>): Promise<void>;
  /**
   * A number that changes whenever another process may have changed the data we cache (tokens).
   * SQLite: PRAGMA data_version. PostgreSQL: bumped by token-change notifications.
   */
  changeMarker(): number;
  /**
   * Read inside a write transaction: a number that moves with every change to subscriptions or
   * callbacks, by anyone, so a publish may keep their rows between transactions (SQLite, kept by
   * triggers). Undefined where there is none: the publish reads the tables every time.
   */
  fanOutVersion(): number | undefined;
  /** Calls `onDue` when another process announced due deliveries. Returns a stop function. */
  listenDue(onDue: () => void): Promise<() => Promise<void>>;
  /**
   * SQLite: rebuilds the file (VACUUM) and truncates its WAL, so neither keeps a copy of what was
   * erased, off the event loop where it can (sqlite/checkpointer.ts). Resolves with what could not
   * be done, if anything. PostgreSQL has none: its old row versions are out of every query's reach.
   */
  rebuildFile?(): Promise<string | undefined>;
  /** Whether an error is a unique-constraint violation. */
  isUniqueViolation(err: unknown): boolean;
  close(): Promise<void>;
}
