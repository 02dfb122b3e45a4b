// API tokens: `cst_` + base64url of 32 random bytes. Only a SHA-256 hash is stored (the token has
// 256 bits of entropy, so a slow KDF adds nothing). Rows are found by a short public prefix and
// the hash is then compared in constant time.
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

export const TOKEN_PREFIX = 'cst_';
const LOOKUP_LENGTH = 12;

export interface IssuedToken {
  token: string;
  lookup: string;
  hash: string;
}

export function issueToken(): IssuedToken {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, lookup: tokenLookup(token) as string, hash: hashToken(token) };
}

/** The indexed prefix used to find a token's row; undefined when the string cannot be a token. */
export function tokenLookup(token: string): string | undefined {
  if (!token.startsWith(TOKEN_PREFIX) || token.length !== TOKEN_PREFIX.length + 43) return undefined;
  return token.slice(0, TOKEN_PREFIX.length + LOOKUP_LENGTH);
}

export function hashToken(token: string): string {
  return hash('sha256', token, 'hex');
}

/** `storedHash` is the hex hash as stored, or its bytes (callers checking often decode it once). */
export function tokenMatches(token: string, storedHash: string | Buffer): boolean {
  const presented = hash('sha256', token, 'buffer');
  // Stryker disable next-line ConditionalExpression: Buffer.from(aBuffer, 'hex') copies the bytes and ignores the encoding, so decoding a Buffer too gives the same bytes
  const stored = typeof storedHash === 'string' ? Buffer.from(storedHash, 'hex') : storedHash;
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}
