// Multi-row INSERTs for the queue's hot path, with their SQL text made once per row count and kept.
// Kysely's builder makes an immutable node for every value and compiles the tree on every call; for
// a batch of a few hundred rows that costs more CPU than the database spends inserting them. The
// text is what the builder would produce, so both dialects run the same statement as before.
import { CompiledQuery, type Kysely } from 'kysely';
import type { DialectName } from '../dialect.js';
import type { Database } from '../schema.js';

export type BulkInsert<R> = (db: Kysely<Database>, dialect: DialectName, rows: readonly R[]) => Promise<unknown[]>;

/** Every column of a row type, checked by the compiler: a column added to the schema must be listed. */
export function allColumns<R extends object>(columns: Record<keyof R & string, true>): (keyof R & string)[] {
  return Object.keys(columns) as (keyof R & string)[];
}

/**
 * An insert of `columns` into `table`, with an optional `tail` (ON CONFLICT …, RETURNING …) in
 * plain SQL. Rows are written in the order given; the result is whatever the tail returns.
 */
export function bulkInsert<R extends object>(
  table: keyof Database & string,
  columns: readonly (keyof R & string)[],
  tail = '',
): BulkInsert<R> {
  const head = `insert into "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) values `;
  const texts: Record<DialectName, Map<number, string>> = { sqlite: new Map(), postgres: new Map() };
  const textFor = (dialect: DialectName, count: number): string => {
    let text = texts[dialect].get(count);
    if (text === undefined) {
      const tuples: string[] = [];
      let n = 0;
      for (let r = 0; r < count; r++) {
        const marks = columns.map(() => (dialect === 'postgres' ? `$${++n}` : '?'));
        tuples.push(`(${marks.join(', ')})`);
      }
      text = `${head}${tuples.join(', ')}${tail ? ` ${tail}` : ''}`;
      texts[dialect].set(count, text);
    }
    return text;
  };
  return async (db, dialect, rows) => {
    if (rows.length === 0) return [];
    const parameters: unknown[] = new Array(rows.length * columns.length);
    let i = 0;
    for (const row of rows) {
      for (const column of columns) parameters[i++] = row[column];
    }
    const result = await db.executeQuery(CompiledQuery.raw(textFor(dialect, rows.length), parameters));
    return result.rows;
  };
}
