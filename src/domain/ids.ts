// Prefixed, time-sortable identifiers (`sub_01J...`). A monotonic ULID keeps ids created in the
// same millisecond in creation order, so "ORDER BY id" is "ORDER BY creation time" everywhere.
import { monotonicFactory } from 'ulidx';

const nextUlid = monotonicFactory();

export type IdPrefix = 'acc' | 'tok' | 'sub' | 'evt' | 'dlv';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${nextUlid()}`;
}

const ID_SHAPE = /^[a-z]{2,3}_[0-9A-HJKMNP-TV-Z]{26}$/;

/** True when `value` looks like an id of ours with that prefix; used to turn garbage into 404s early. */
export function isId(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(`${prefix}_`) && ID_SHAPE.test(value);
}
