// What an erasure looks for, as pure logic: a signer's e-mail address or a document id, found as
// a whole (case-insensitively) in stored text. The store prefilters rows in SQL with LIKE on the
// lowercased column (`likePattern`) and confirms each candidate here, so a LIKE hit inside a longer
// address (`joana.erase.me@…` for `erase.me@…`) or in a JSON key is never erased by mistake.

/** Whom an erasure is about: every event carrying this address, or every event of this document. */
export type ErasureSubject = { signerEmail: string } | { documentId: string };

/** What an erased event's data becomes; its id, type and times are kept. */
export const ERASED_DATA = '{"erased":true}';

/** As publishing checks data.signer_email (domain/events.ts), so any address accepted there can be erased. */
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export const MAX_EMAIL_LENGTH = 320;
export const MAX_DOCUMENT_ID_LENGTH = 256;

/** Whether `value` is an address publishing would have accepted. */
export function isEmailAddress(value: string): boolean {
  return value.length <= MAX_EMAIL_LENGTH && EMAIL.test(value);
}

/** The text a subject is searched for. */
export function needleOf(subject: ErasureSubject): string {
  return 'signerEmail' in subject ? subject.signerEmail : subject.documentId;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Characters that may continue an address on either side: an address found next to one of them is
// part of a longer one. Before it, anything of a local part; after it, anything of a domain, or a
// dot that goes on into one (a dot ending a sentence does not).
const ADDRESS_BEFORE = "(?<![\\p{L}\\p{N}.!#$%&'*+/=?^_`{|}~@-])";
const ADDRESS_AFTER = '(?![\\p{L}\\p{N}_@-]|\\.[\\p{L}\\p{N}])';
// A document id is a token: letters, digits, `_` and `-` around it make it part of another one.
const TOKEN_BEFORE = '(?<![\\p{L}\\p{N}_-])';
const TOKEN_AFTER = '(?![\\p{L}\\p{N}_-])';

/** Finds the subject as a whole, in any case, anywhere in a text. */
export function subjectMatcher(subject: ErasureSubject): RegExp {
  const needle = escapeRegExp(needleOf(subject));
  return 'signerEmail' in subject
    ? new RegExp(`${ADDRESS_BEFORE}${needle}${ADDRESS_AFTER}`, 'iu')
    : new RegExp(`${TOKEN_BEFORE}${needle}${TOKEN_AFTER}`, 'iu');
}

/**
 * A LIKE pattern (escape character `\`) for the lowercased column: the longest run of the needle
 * that JSON text and SQL's lower() keep as they are (printable ASCII other than `"` and `\`), so
 * that a JSON-escaped or non-ASCII needle still finds its rows. A prefilter only: every hit is
 * confirmed by `subjectMatcher`.
 */
export function likePattern(subject: ErasureSubject): string {
  const runs = needleOf(subject)
    .toLowerCase()
    .split(/[^\x20-\x21\x23-\x5b\x5d-\x7e]+/);
  const longest = runs.reduce((a, b) => (b.length > a.length ? b : a), '');
  return `%${longest.replace(/[\\%_]/g, '\\$&')}%`;
}

/** Whether a string value anywhere in the JSON text (object keys aside) holds the subject. */
export function jsonHolds(json: string, matcher: RegExp): boolean {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    // Stored data is always JSON; should a row ever not be, erring towards erasure is the safe side.
    return matcher.test(json);
  }
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === 'string') {
      if (matcher.test(item)) return true;
    } else if (Array.isArray(item)) {
      stack.push(...item);
    } else if (item !== null && typeof item === 'object') {
      stack.push(...Object.values(item));
    }
  }
  return false;
}
