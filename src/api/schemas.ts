// Schemas shared by several routes. They validate requests, shape responses (fast-json-stringify
// drops anything not listed, so a secret can never leak by accident) and generate /openapi.json.
import { type TSchema, Type } from '@sinclair/typebox';
import { EVENT_TYPES, OPERATIONAL_EVENT_TYPES, SUBSCRIBABLE_EVENT_TYPES } from '../domain/events.js';
import { ERROR_CATALOGUE } from '../errors.js';

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ enum: Object.keys(ERROR_CATALOGUE) }),
      message: Type.String(),
      details: Type.Optional(Type.Array(Type.Object({ field: Type.Optional(Type.String()), message: Type.String() }))),
    }),
  },
  { $id: 'ErrorResponse', description: 'Every error has this shape, with a stable code.' },
);

export const EventTypeSchema = Type.Unsafe<(typeof EVENT_TYPES)[number]>({
  type: 'string',
  enum: [...EVENT_TYPES],
  description: 'One of the supported e-signature events.',
});

/** What a subscription may take: the seed's events, and the operational ones countersign makes. */
export const SubscribableEventTypeSchema = Type.Unsafe<(typeof SUBSCRIBABLE_EVENT_TYPES)[number]>({
  type: 'string',
  enum: [...SUBSCRIBABLE_EVENT_TYPES],
  description: `A document event, or an operational event countersign makes about deliveries (${OPERATIONAL_EVENT_TYPES.join(', ')}).`,
});

export const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({ maxLength: 64, description: 'next_cursor from the previous page' })),
};

export const NextCursor = Type.Union([Type.String(), Type.Null()], {
  description: 'Pass as `cursor` for the next page; null on the last page.',
});

/** The error answers a route can give, for the OpenAPI document. */
export function errors(...statuses: (400 | 401 | 403 | 404 | 409 | 413 | 422 | 429)[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const status of statuses) out[status] = Type.Ref('ErrorResponse');
  return out;
}

export const Timestamp = Type.String({ format: 'date-time' });

/**
 * The largest request body, in bytes, per route: 64 KiB for a route that says nothing (a
 * subscription, a document, an erasure: none needs more), 1 MiB for a published event's data, and
 * 10 MiB for POST /v1/events/batch.
 */
export const SMALL_BODY_LIMIT = 64 * 1024;
export const BODY_LIMIT = 1024 * 1024;
export const BATCH_BODY_LIMIT = 10 * 1024 * 1024;

/** A body limit as the 413 and the docs say it: "64 KiB", "1 MiB". */
export function describeBodyLimit(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
}
