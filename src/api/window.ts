// `since` / `until` query parameters: RFC 3339 in, epoch milliseconds out, 400 naming the field.
import { parseTimestamp } from '../domain/time.js';
import { invalidField } from '../errors.js';

export function parseWindow(since: string | undefined, until: string | undefined): { since?: number; until?: number } {
  const out: { since?: number; until?: number } = {};
  if (since !== undefined) out.since = timestampField('since', since);
  if (until !== undefined) out.until = timestampField('until', until);
  if (out.since !== undefined && out.until !== undefined && out.until < out.since) {
    throw invalidField('until', 'must not be before since');
  }
  return out;
}

export function timestampField(field: string, value: string): number {
  const ms = parseTimestamp(value);
  if (ms === undefined) throw invalidField(field, 'must be an RFC 3339 date-time such as 2025-12-18T14:30:05Z');
  return ms;
}
