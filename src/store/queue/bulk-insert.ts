// Multi-row INSERTs for the queue's hot path, with their SQL text made once per row count and kept.
// Kysely's builder makes an immutable node for every value and compiles the tree on every call; for
// a batch of a few hundred rows that costs more CPU than the database spends inserting them. The
// text is what the builder would produce, so both dialects run the same statement as before.
//
// The number of distinct texts is bounded. On SQLite, rows go in chunks whose sizes are powers of
// two (400 rows: 256, 128 and 16), so a table has at most nine statement shapes, each prepared once
// and kept in the connection's statement cache. A text per exact row count made hundreds of shapes:
// in the neighbours benchmark 340 distinct statements were prepared 690 times (one of a few hundred
// rows is a few hundred kilobytes of SQLite's memory, and about as long to plan as to run), and the
// process's malloc heap grew by about 12 MB. PostgreSQL plans each statement anyway and each one is
// a round trip, so there the batch stays one statement, with the last texts kept in a bounded cache.
import { CompiledQuery, type Kysely } from 'kysely';
import type { DialectName } from '../dialect.js';
import { GenerationCache } from '../generation-cache.js';
import type { Database } from '../schema.js';

export type BulkInsert<R> = (db: Kysely<Database>, dialect: DialectName, rows: readonly R[]) => Promise<unknown[]>;

/** The largest chunk a SQLite statement takes (its shapes are the powers of two up to it). */
export const SQLITE_LARGEST_CHUNK = 256;

/** PostgreSQL texts kept, per table (see above). */
const POSTGRES_TEXTS = 32;

/** Every column of a row type, checked by the compiler: a column added to the schema must be listed. */
export function allColumns<R extends object>(columns: Record<keyof R & string, true>): (keyof R & string)[] {
  return Object.keys(columns) as (keyof R & string)[];
}

/** The chunk sizes SQLite inserts `count` rows in: powers of two, largest first, SQLITE_LARGEST_CHUNK at most. */
export function sqliteChunkSizes(count: number): number[] {
  const sizes: number[] = [];
  let left = count;
  while (left > 0) {
    let size = SQLITE_LARGEST_CHUNK;
    while (size > left) size >>= 1;
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/**
 * An insert of `columns` into `table`, with an optional `tail` (ON CONFLICT …, RETURNING …) in
 * plain SQL. Rows are written in the order given; the result is whatever the tail returns, in order.
 */
export function bulkInsert<R extends object>(
  table: keyof Database & string,
  columns: readonly (keyof R & string)[],
  tail = '',
): BulkInsert<R> {
  const head = `insert into "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) values `;
  const makeText = (dialect: DialectName, count: number): string => {
    const tuples: string[] = [];
    let n = 0;
    for (let r = 0; r < count; r++) {
      const marks = columns.map(() => (dialect === 'postgres' ? `$${++n}` : '?'));
      tuples.push(`(${marks.join(', ')})`);
    }
    return `${head}${tuples.join(', ')}${tail ? ` ${tail}` : ''}`;
  };
  const sqliteTexts = new Map<number, string>();
  const postgresTexts = new GenerationCache<number, string>(POSTGRES_TEXTS);
  const textFor = (dialect: DialectName, count: number): string => {
    const texts = dialect === 'sqlite' ? sqliteTexts : postgresTexts;
    let text = texts.get(count);
    if (text === undefined) {
      text = makeText(dialect, count);
      texts.set(count, text);
    }
    return text;
  };
  const run = async (db: Kysely<Database>, dialect: DialectName, rows: readonly R[], from: number, count: number) => {
    const parameters: unknown[] = new Array(count * columns.length);
    let i = 0;
    for (let r = from; r < from + count; r++) {
      const row = rows[r] as R;
      for (const column of columns) parameters[i++] = row[column];
    }
    const result = await db.executeQuery(CompiledQuery.raw(textFor(dialect, count), parameters));
    return result.rows;
  };
  return async (db, dialect, rows) => {
    if (rows.length === 0) return [];
    if (dialect === 'postgres') return run(db, dialect, rows, 0, rows.length);
    const returned: unknown[] = [];
    let from = 0;
    for (const size of sqliteChunkSizes(rows.length)) {
      returned.push(...(await run(db, dialect, rows, from, size)));
      from += size;
    }
    return returned;
  };
}
