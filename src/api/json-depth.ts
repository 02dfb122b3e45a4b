// How deep JSON text nests, found by one pass over the raw text before it is parsed: a body nested
// two million levels deep is refused in the time it takes to read it, instead of being parsed (for
// seconds, on the only thread) and then refused.

/**
 * Whether `text` opens more than `max` arrays and objects inside one another (the outermost counts
 * as 1). Brackets inside strings do not count; each string is skipped with `indexOf`, so a long
 * string costs a native scan, not a character-by-character loop. Malformed text is not judged here:
 * the parser refuses it.
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  const end = text.length;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = closingQuote(text, i + 1);
      if (i < 0) return false;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** The index of the quote closing a string whose content starts at `from`, or -1 when none does. */
function closingQuote(text: string, from: number): number {
  for (let at = text.indexOf('"', from); at >= 0; at = text.indexOf('"', at + 1)) {
    // Escaped when an odd number of backslashes stands right before it.
    let slashes = 0;
    while (text.charCodeAt(at - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return at;
  }
  return -1;
}
