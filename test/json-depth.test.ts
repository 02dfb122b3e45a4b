// The nesting scan run on raw JSON text before it is parsed (src/api/json-depth.ts).
import { describe, expect, it } from 'vitest';
import { nestsDeeperThan } from '../src/api/json-depth.js';

const nest = (depth: number, inner = '1') => '['.repeat(depth) + inner + ']'.repeat(depth);

describe('nestsDeeperThan', () => {
  it('counts arrays and objects inside one another, the outermost as 1', () => {
    expect(nestsDeeperThan(nest(32), 32)).toBe(false);
    expect(nestsDeeperThan(nest(33), 32)).toBe(true);
    const objects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    expect(nestsDeeperThan(objects(32), 32)).toBe(false);
    expect(nestsDeeperThan(objects(33), 32)).toBe(true);
    // Siblings do not add up: depth is how far in, not how many.
    expect(nestsDeeperThan(`[${Array.from({ length: 100 }, () => nest(31)).join(',')}]`, 32)).toBe(false);
    expect(nestsDeeperThan('1', 0)).toBe(false);
    expect(nestsDeeperThan('{}', 0)).toBe(true);
  });

  it('does not count brackets inside strings, escaped quotes and backslashes included', () => {
    expect(nestsDeeperThan(`{"a":"${'['.repeat(100)}"}`, 1)).toBe(false);
    // \" does not end the string, so the brackets after it are still inside it.
    expect(nestsDeeperThan(`{"a":"\\"${'{'.repeat(100)}"}`, 1)).toBe(false);
    // \\ is one escaped backslash: the quote after it ends the string, and the brackets count.
    expect(nestsDeeperThan(`{"a":"\\\\",${'['.repeat(5)}`, 3)).toBe(true);
    // A key may hold brackets too.
    expect(nestsDeeperThan(`{"${']'.repeat(10)}":${nest(2)}}`, 3)).toBe(false);
    expect(nestsDeeperThan(`{"${']'.repeat(10)}":${nest(3)}}`, 3)).toBe(true);
  });

  it('leaves malformed text to the parser, and reads two million levels at once', () => {
    expect(nestsDeeperThan('{"a":"never closed [[[[', 1)).toBe(false);
    expect(nestsDeeperThan(']]]]', 0)).toBe(false);
    expect(nestsDeeperThan('['.repeat(2_000_000), 32)).toBe(true);
  });
});
