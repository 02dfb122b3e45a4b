// SQLite file rebuilds owed by erasures (erasure.ts): what an erasure overwrote can survive in the
// file's free space and in the WAL until the file is rebuilt (sqlite/rewrite.ts). A rebuild runs
// off the event loop (sqlite/checkpointer.ts), yet it holds every query of this process while it
// copies the file, so it runs at most once per `everyMs`: an erasure soon after the last rebuild
// leaves its rebuild scheduled, and answers when it will be done.
//
// Whether a rebuild is owed is kept in the database (countersign_settings), written in the same
// transaction as the erasure's changes: a process that stops first leaves it owed, and the next
// one to open the store schedules it.
import type { Kysely } from 'kysely';
import type { StoreDialect } from './dialect.js';
import type { Database } from './schema.js';

/** The settings row saying a rebuild is owed; its value changes with every erasure write that changed a row. */
export const REWRITE_OWED = 'erasure_rewrite_owed';

export const DEFAULT_FILE_REBUILD_EVERY_MS = 60_000;

export async function rewriteOwed(db: Kysely<Database>): Promise<string | undefined> {
  const row = await db
    .selectFrom('countersign_settings')
    .select('value')
    .where('key', '=', REWRITE_OWED)
    .executeTakeFirst();
  return row?.value;
}

/** What became of the rebuild an erasure owes: done now (with what could not be done), or later. */
export type RebuildAnswer = { done: true; problem?: string } | { done: false; at: number };

export class FileRebuilds {
  private lastAt = Number.NEGATIVE_INFINITY;
  /** The rebuild under way, settled either way. */
  private running: Promise<undefined> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private closed = false;

  constructor(
    private readonly d: StoreDialect,
    private readonly everyMs: number,
    private readonly warn: (message: string) => void = () => {},
  ) {}

  /** After an erasure's writes: rebuilds now when the last rebuild is `everyMs` old, else schedules one. */
  async afterErasure(): Promise<RebuildAnswer> {
    if (!this.d.rebuildFile) return { done: true };
    // A rebuild under way may have begun before this erasure's writes: wait, then look again.
    while (this.running) await this.running;
    if ((await rewriteOwed(this.d.db)) === undefined) return { done: true };
    const next = this.lastAt + this.everyMs;
    if (Date.now() >= next) return { done: true, problem: await this.run() };
    return { done: false, at: this.schedule(next) };
  }

  /** At start: a rebuild an earlier process owed is scheduled (not run during start-up). */
  async resume(): Promise<void> {
    if (this.d.rebuildFile && (await rewriteOwed(this.d.db)) !== undefined) this.schedule(Date.now());
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private run(): Promise<string | undefined> {
    const rebuild = this.d.rebuildFile;
    if (!rebuild) return Promise.resolve(undefined);
    this.lastAt = Date.now();
    const running = (async () => {
      const owed = await rewriteOwed(this.d.db);
      if (owed === undefined) return undefined;
      const problem = await rebuild.call(this.d);
      // Unless another erasure changed rows meanwhile (and so owes a rebuild of its own).
      if (!problem) {
        await this.d.writeTransaction((trx) =>
          trx.deleteFrom('countersign_settings').where('key', '=', REWRITE_OWED).where('value', '=', owed).execute(),
        );
      }
      return problem;
    })();
    // Settles either way (the caller of run() sees the failure); cleared once settled.
    const settled: Promise<undefined> = running.then(
      () => undefined,
      () => undefined,
    );
    this.running = settled;
    void settled.then(() => {
      if (this.running === settled) this.running = undefined;
    });
    return running;
  }

  /** Schedules a rebuild at `at` (or keeps the one already scheduled); returns when it runs. */
  private schedule(at: number): number {
    if (this.timer !== undefined) return this.timerAt;
    if (this.closed) return at;
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        if (this.closed) return;
        this.run().then(
          (problem) => {
            if (problem) this.retryAfter(problem);
          },
          (err: unknown) => this.retryAfter(err instanceof Error ? err.message : String(err)),
        );
      },
      Math.max(0, at - Date.now()),
    );
    this.timer.unref();
    return at;
  }

  private retryAfter(problem: string): void {
    this.warn(`the SQLite file rebuild that erasure owes did not finish (${problem}); it is tried again`);
    this.schedule(Date.now() + Math.max(this.everyMs, 1_000));
  }
}
