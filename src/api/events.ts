// Publishing and reading events. POST /v1/events commits the event and its deliveries (grouped
// with concurrent publishes into one transaction) and answers 202 without waiting for any receiver.
import { createHash } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { type EventType, validateEventData } from '../domain/events.js';
import { parseTimestamp, toIsoSeconds } from '../domain/time.js';
import { CountersignError, invalidField, notFound } from '../errors.js';
import { BatchRefusedError, type EventRecord, type PublishRequest, type PublishResult } from '../store/store.js';
import type { AppContext } from './context.js';
import {
  BATCH_BODY_LIMIT,
  BODY_LIMIT,
  EventTypeSchema,
  errors,
  IdParams,
  NextCursor,
  PageQuery,
  SubscribableEventTypeSchema,
} from './schemas.js';
import { parseWindow } from './window.js';

const PublishBody = Type.Object(
  {
    event: EventTypeSchema,
    data: Type.Object(
      {},
      { additionalProperties: true, description: 'document_id, signer_email, audit_url, plus any fields of yours' },
    ),
    timestamp: Type.Optional(Type.String({ description: 'RFC 3339; defaults to now' })),
  },
  { additionalProperties: false },
);

const PublishHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
});

const Accepted = Type.Object({
  id: Type.String(),
  event: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  deliveries: Type.Integer({ description: 'deliveries queued: one per matching subscription, plus the callback' }),
});

/** The most events one batch may hold. */
export const MAX_BATCH = 1000;

const BatchItem = Type.Object(
  {
    ...PublishBody.properties,
    idempotency_key: Type.Optional(
      Type.String({ minLength: 1, maxLength: 255, description: 'as the Idempotency-Key of a single publish' }),
    ),
  },
  { additionalProperties: false },
);

const BatchBody = Type.Object(
  { events: Type.Array(BatchItem, { minItems: 1, maxItems: MAX_BATCH }) },
  { additionalProperties: false },
);

const BatchAccepted = Type.Object({
  events: Type.Array(
    Type.Object({
      ...Accepted.properties,
      replayed: Type.Optional(
        Type.Literal(true, { description: 'this item’s idempotency_key was used before: the first result' }),
      ),
    }),
    { description: 'one per event, in the order given' },
  ),
});

const EventView = Type.Object({
  id: Type.String(),
  event: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  data: Type.Object({}, { additionalProperties: true }),
  created_at: Type.String({ format: 'date-time' }),
  deliveries: Type.Integer(),
  test: Type.Boolean({ description: 'a test event, sent by POST …/test' }),
  source: Type.Optional(
    Type.Literal('lifecycle', {
      description: 'made by the documents lifecycle (POST /v1/documents); its payload says so too',
    }),
  ),
});

const ListQuery = Type.Object(
  {
    ...PageQuery,
    event_type: Type.Optional(SubscribableEventTypeSchema),
    document_id: Type.Optional(Type.String({ maxLength: 256, description: 'events about this document' })),
    include_tests: Type.Optional(
      Type.Boolean({ default: false, description: 'include test events (left out by default)' }),
    ),
    since: Type.Optional(Type.String({ description: 'RFC 3339; created at or after' })),
    until: Type.Optional(Type.String({ description: 'RFC 3339; created before' })),
  },
  { additionalProperties: false },
);

/**
 * 409 for an event that names a document the documents lifecycle manages: only the lifecycle
 * publishes its events (their payload says `"source":"lifecycle"`), so that what a receiver gets
 * for such a document is what the lifecycle recorded.
 */
function lifecycleDocument(field: string, data: { document_id: string }, inBatch = false): CountersignError {
  return new CountersignError(
    'conflict',
    `${field}: ${data.document_id} is a document of the documents lifecycle (POST /v1/documents), which publishes its events itself${inBatch ? '; nothing of this batch was stored' : ''}`,
  );
}

function presentEvent(e: EventRecord): Static<typeof EventView> {
  return {
    id: e.id,
    event: e.type,
    timestamp: toIsoSeconds(e.occurredAt),
    data: JSON.parse(e.dataJson) as Record<string, unknown>,
    created_at: toIsoSeconds(e.createdAt),
    deliveries: e.deliveryCount,
    test: e.test,
    ...(e.source ? { source: e.source } : {}),
  };
}

/**
 * JSON with every object's keys sorted, arrays in their order: the same text for two requests that
 * mean the same, so a retry that re-serialised its body in another key order still counts as the
 * same request under its Idempotency-Key. Only for the hash: the stored data keeps the client's order.
 */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const members = Object.keys(record)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
  return `{${members.join(',')}}`;
}

/**
 * The store's request for one event to publish, checked: its data fields for its type and its
 * timestamp. `at` prefixes the field a 400 names (`events[17].` in a batch).
 */
function publishRequest(
  accountId: string,
  item: Static<typeof PublishBody>,
  idempotencyKey: string | undefined,
  at: string,
): PublishRequest {
  const { event, data, timestamp } = item;
  try {
    validateEventData(event as EventType, data);
  } catch (err) {
    if (err instanceof CountersignError && at !== '' && err.code === 'validation_failed') {
      const field = err.details?.[0]?.field;
      throw invalidField(`${at}${field ?? 'data'}`, err.details?.[0]?.message ?? err.message);
    }
    throw err;
  }
  let occurredAt = Date.now();
  if (timestamp !== undefined) {
    const parsed = parseTimestamp(timestamp);
    if (parsed === undefined) {
      throw invalidField(`${at}timestamp`, 'must be an RFC 3339 date-time such as 2025-12-18T14:30:05Z');
    }
    occurredAt = parsed;
  }
  return {
    accountId,
    type: event,
    dataJson: JSON.stringify(data),
    documentId: (data as { document_id: string }).document_id,
    occurredAt,
    ...(idempotencyKey === undefined
      ? {}
      : {
          idempotencyKey,
          requestHash: createHash('sha256')
            .update(`${event}\n${timestamp === undefined ? '' : occurredAt}\n${canonicalJson(data)}`)
            .digest('hex'),
        }),
  };
}

export function eventRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: Static<typeof PublishBody>; Headers: Static<typeof PublishHeaders> }>(
      '/v1/events',
      {
        config: { scope: 'publish' },
        bodyLimit: BODY_LIMIT,
        schema: {
          tags: ['events'],
          summary: 'Publish an event to every matching subscription and the account callback',
          body: PublishBody,
          headers: PublishHeaders,
          response: { 202: Accepted, ...errors(400, 401, 403, 409, 413, 422) },
        },
      },
      async (request, reply) => {
        const result = await ctx.publisher.add(
          publishRequest(request.principal.accountId, request.body, request.headers['idempotency-key'], ''),
        );
        if (!result.ok && result.reason === 'lifecycle_document') {
          throw lifecycleDocument('data.document_id', request.body.data as { document_id: string });
        }
        if (!result.ok) {
          throw new CountersignError(
            'idempotency_key_reused',
            'this Idempotency-Key was used in the last 24 hours with a different request',
          );
        }
        if (result.replayed) reply.header('idempotent-replayed', 'true');
        return reply.code(202).send({
          id: result.event.id,
          event: result.event.type,
          timestamp: toIsoSeconds(result.event.occurredAt),
          deliveries: result.event.deliveryCount,
        });
      },
    );

    app.post<{ Body: Static<typeof BatchBody> }>(
      '/v1/events/batch',
      {
        config: { scope: 'publish' },
        bodyLimit: BATCH_BODY_LIMIT,
        schema: {
          tags: ['events'],
          summary: 'Publish up to 1,000 events in one request, all or none',
          description:
            'One transaction: every event is stored with its deliveries, or none is. An invalid item gets a ' +
            '400 naming it (`events[17].data.signer_email`). An item’s `idempotency_key` works as the ' +
            'Idempotency-Key of a single publish: a repeat answers the first result with `replayed: true` ' +
            'and queues nothing; the same key with another request is a 422 naming the item. Bodies up to 10 MiB.',
          body: BatchBody,
          response: { 202: BatchAccepted, ...errors(400, 401, 403, 409, 413, 422) },
        },
      },
      async (request, reply) => {
        const accountId = request.principal.accountId;
        const items = request.body.events.map(({ idempotency_key, ...item }, i) =>
          publishRequest(accountId, item, idempotency_key, `events[${i}].`),
        );
        let results: PublishResult[];
        try {
          results = await ctx.publishBatch(items);
        } catch (err) {
          if (err instanceof BatchRefusedError && err.reason === 'too_many_deliveries') {
            throw new CountersignError(
              'quota_exceeded',
              `this batch would make ${err.deliveries} deliveries, more than the ${ctx.quotas.deliveriesPerBatch} one batch may (COUNTERSIGN_MAX_BATCH_DELIVERIES; from events[${err.index}] on); nothing of it was stored: send fewer events per batch`,
            );
          }
          if (err instanceof BatchRefusedError && err.reason === 'lifecycle_document') {
            const item = request.body.events[err.index];
            throw lifecycleDocument(
              `events[${err.index}].data.document_id`,
              item?.data as { document_id: string },
              true,
            );
          }
          if (err instanceof BatchRefusedError) {
            throw new CountersignError(
              'idempotency_key_reused',
              `events[${err.index}].idempotency_key was used in the last 24 hours with a different request; nothing of this batch was stored`,
            );
          }
          throw err;
        }
        return reply.code(202).send({
          events: results.map((r) => {
            if (!r.ok) throw new Error('a refused item in a batch that was stored');
            return {
              id: r.event.id,
              event: r.event.type,
              timestamp: toIsoSeconds(r.event.occurredAt),
              deliveries: r.event.deliveryCount,
              ...(r.replayed ? { replayed: true as const } : {}),
            };
          }),
        });
      },
    );

    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/v1/events',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['events'],
          summary: 'List events, newest first',
          querystring: ListQuery,
          response: {
            200: Type.Object({ events: Type.Array(EventView), next_cursor: NextCursor }),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => {
        const q = request.query;
        const window = parseWindow(q.since, q.until);
        const page = await ctx.store.listEvents(request.principal.accountId, {
          limit: q.limit ?? 20,
          cursor: q.cursor,
          eventType: q.event_type,
          documentId: q.document_id,
          includeTests: q.include_tests === true,
          ...window,
        });
        return { events: page.items.map(presentEvent), next_cursor: page.nextCursor };
      },
    );

    app.get<{ Params: Static<typeof IdParams> }>(
      '/v1/events/:id',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['events'],
          summary: 'One event',
          params: IdParams,
          response: { 200: EventView, ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        const event = await ctx.store.getEvent(request.principal.accountId, request.params.id);
        if (!event) throw notFound('event');
        return presentEvent(event);
      },
    );
  };
}
