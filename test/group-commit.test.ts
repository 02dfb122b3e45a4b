// GroupCommit batches callers' items into single writes; with a linger, a small batch waits for
// company. No timing is asserted: lingers are long enough that a test never reaches them unless it
// means to (drain or a full batch ends them).
import { setImmediate as nextTick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../src/store/group-commit.js';

function recorder() {
  const writes: number[][] = [];
  const commit = (linger?: { ms: number; below: number }) =>
    new GroupCommit<number, string>(
      async (items) => {
        writes.push([...items]);
        return items.map((n) => `ok ${n}`);
      },
      1000,
      linger,
    );
  return { writes, commit };
}

describe('GroupCommit', () => {
  it('writes the items added in one tick together and answers each caller with its own result', async () => {
    const { writes, commit } = recorder();
    const group = commit();
    const answers = await Promise.all([1, 2, 3].map((n) => group.add(n)));
    expect(answers).toEqual(['ok 1', 'ok 2', 'ok 3']);
    expect(writes).toEqual([[1, 2, 3]]);
  });

  it('without a linger, writes an item added alone in its own write', async () => {
    const { writes, commit } = recorder();
    const group = commit();
    await group.add(1);
    await group.add(2);
    expect(writes).toEqual([[1], [2]]);
  });

  it('with a linger, holds items added over several ticks until the batch is full', async () => {
    const { writes, commit } = recorder();
    const group = commit({ ms: 60_000, below: 4 });
    const answers = [group.add(1)];
    await nextTick();
    answers.push(group.add(2));
    await nextTick();
    answers.push(group.add(3));
    await nextTick();
    await nextTick();
    expect(writes).toEqual([]);
    answers.push(group.add(4));
    expect(await Promise.all(answers)).toEqual(['ok 1', 'ok 2', 'ok 3', 'ok 4']);
    expect(writes).toEqual([[1, 2, 3, 4]]);
  });

  it('with a linger, drain writes what is waiting at once', async () => {
    const { writes, commit } = recorder();
    const group = commit({ ms: 60_000, below: 100 });
    const answer = group.add(7);
    await nextTick();
    expect(writes).toEqual([]);
    await group.drain();
    expect(await answer).toBe('ok 7');
    expect(writes).toEqual([[7]]);
  });

  it('with a linger, writes a small batch once the linger has passed', async () => {
    const { writes, commit } = recorder();
    const group = commit({ ms: 1, below: 100 });
    expect(await group.add(5)).toBe('ok 5');
    expect(writes).toEqual([[5]]);
  });

  it('rejects every caller of a failed write, and writes later items afresh', async () => {
    let fail = true;
    const group = new GroupCommit<number, number>(async (items) => {
      if (fail) throw new Error('database unavailable');
      return items;
    });
    const results = await Promise.allSettled([group.add(1), group.add(2)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await group.add(3)).toBe(3);
  });
});
