// The chunk sizes SQLite's multi-row inserts go in: few statement shapes, every row exactly once.
import { describe, expect, it } from 'vitest';
import { SQLITE_LARGEST_CHUNK, sqliteChunkSizes } from '../src/store/queue/bulk-insert.js';

describe('sqliteChunkSizes', () => {
  it('covers every count exactly, in powers of two no larger than the largest chunk, largest first', () => {
    const shapes = new Set<number>();
    for (let count = 0; count <= 2_000; count++) {
      const sizes = sqliteChunkSizes(count);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(count);
      for (const [i, size] of sizes.entries()) {
        expect(Number.isInteger(Math.log2(size))).toBe(true);
        expect(size).toBeLessThanOrEqual(SQLITE_LARGEST_CHUNK);
        if (i > 0) expect(size).toBeLessThanOrEqual(sizes[i - 1] as number);
        shapes.add(size);
      }
    }
    expect([...shapes].sort((a, b) => a - b)).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256]);
    expect(sqliteChunkSizes(400)).toEqual([256, 128, 16]);
  });
});
