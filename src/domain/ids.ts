// Prefixed, time-sortable identifiers (`sub_01J...`). A monotonic ULID keeps ids created in the
// same millisecond in creation order, so "ORDER BY id" is "ORDER BY creation time" everywhere.
import { randomFillSync } from 'node:crypto';
import { encodeTime, monotonicFactory } from 'ulidx';

/**
 * ulidx asks its PRNG once per character, and its default PRNG makes a crypto call each time:
 * sixteen calls per new millisecond, a few per cent of the CPU at publish rates. This one serves
 * the same CSPRNG output from a pool refilled 4 KiB at a time. 2^32 is a multiple of 32, so each
 * base-32 character stays uniform.
 */
const pool = Buffer.allocUnsafe(4096);
let poolOffset = pool.length;
export function pooledRandom(): number {
  if (poolOffset + 4 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const value = pool.readUInt32LE(poolOffset);
  poolOffset += 4;
  return value / 2 ** 32;
}

const nextUlid = monotonicFactory(pooledRandom);

export type IdPrefix = 'acc' | 'tok' | 'sub' | 'lsn' | 'evt' | 'dlv' | 'doc' | 'sgn';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${nextUlid()}`;
}

/**
 * The smallest id with this prefix that a ULID made at `ms` can have: every id made at or after
 * `ms` sorts at or after it, so a time window is a range on the id.
 */
export function firstIdAt(prefix: IdPrefix, ms: number): string {
  return `${prefix}_${encodeTime(Math.max(0, Math.floor(ms)), 10)}0000000000000000`;
}

const ID_SHAPE = /^[a-z]{2,3}_[0-9A-HJKMNP-TV-Z]{26}$/;

/** True when `value` looks like an id of ours with that prefix; used to turn garbage into 404s early. */
export function isId(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(`${prefix}_`) && ID_SHAPE.test(value);
}
