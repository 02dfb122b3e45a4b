// The delivery log: list deliveries (by subscription, event, document, target kind, status, time)
// with their latest attempt, and inspect one with every attempt: the request each attempt sent
// (URL and headers, Authorization masked) and the answer's headers and first 4 KiB. A delivery also
// shows its target's URL and the last request in full, the body rebuilt from the stored event with
// secret_token masked. The actions on deliveries are in recovery.ts.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { MASK, sentRequestHeaders } from '../delivery/webhook-request.js';
import { DELIVERY_STATUSES } from '../domain/delivery-status.js';
import { buildPayload } from '../domain/events.js';
import { toIsoMillis } from '../domain/time.js';
import { notFound } from '../errors.js';
import type { Attempt, Callback, Delivery, EventRecord, Subscription } from '../store/store.js';
import type { AppContext } from './context.js';
import { errors, IdParams, NextCursor, PageQuery } from './schemas.js';
import { parseWindow } from './window.js';

export const DeliveryStatus = Type.String({
  enum: [...DELIVERY_STATUSES],
  description:
    "`held`: its subscription is paused or disabled. `waiting`: an ordered subscription's delivery behind an earlier unfinished delivery of the same document. `postponed`: its endpoint's circuit breaker is open; it goes, with its attempts untouched, once the circuit closes.",
});

const Headers = Type.Record(Type.String(), Type.String());

export const AttemptView = Type.Object({
  number: Type.Integer(),
  trigger: Type.String({ enum: ['scheduled', 'manual'] }),
  started_at: Type.String({ format: 'date-time' }),
  duration_ms: Type.Integer(),
  request_url: Type.Union([Type.String(), Type.Null()], { description: 'where this attempt was sent' }),
  request_headers: Type.Union([Headers, Type.Null()], {
    description: 'the headers this attempt sent, the Authorization value masked; null when nothing was sent',
  }),
  status_code: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  response_headers: Type.Union([Headers, Type.Null()], { description: 'the answer’s headers (first 4 KiB)' }),
  response_excerpt: Type.Union([Type.String(), Type.Null()], { description: 'first 4 KiB of the response body' }),
});

const RequestView = Type.Object(
  {
    method: Type.Literal('POST'),
    url: Type.String(),
    headers: Headers,
    body: Type.String({ description: 'the payload, rebuilt from the stored event; secret_token masked' }),
  },
  { description: 'the request the latest attempt sent' },
);

export const DeliveryView = Type.Object({
  id: Type.String(),
  event_id: Type.String(),
  subscription_id: Type.Union([Type.String(), Type.Null()]),
  target: Type.String({
    enum: ['subscription', 'callback', 'listen'],
    description: '`listen`: a `countersign listen` session (subscription_id is its `lsn_…` id)',
  }),
  target_url: Type.Union([Type.String(), Type.Null()], {
    description:
      'the subscription’s or the callback’s URL now, `listen:<token id>` for a listen session (each attempt shows where it went)',
  }),
  status: DeliveryStatus,
  attempt_count: Type.Integer(),
  next_attempt_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  delivered_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  last_attempt: Type.Optional(Type.Union([AttemptView, Type.Null()])),
  attempts: Type.Optional(Type.Array(AttemptView)),
  request: Type.Optional(Type.Union([RequestView, Type.Null()])),
});

const ListQuery = Type.Object(
  {
    ...PageQuery,
    subscription_id: Type.Optional(Type.String({ maxLength: 64 })),
    event_id: Type.Optional(Type.String({ maxLength: 64 })),
    document_id: Type.Optional(
      Type.String({ maxLength: 256, description: 'deliveries of events about this document' }),
    ),
    target: Type.Optional(
      Type.String({
        enum: ['subscription', 'callback', 'listen'],
        description: 'only deliveries to subscriptions, to the callback, or to listen sessions',
      }),
    ),
    status: Type.Optional(DeliveryStatus),
    since: Type.Optional(Type.String({ description: 'RFC 3339; created at or after' })),
    until: Type.Optional(Type.String({ description: 'RFC 3339; created before' })),
  },
  { additionalProperties: false },
);

function requestHeadersOf(a: Attempt, d: Delivery): Record<string, string> | null {
  if (a.request_headers === null) return null;
  return sentRequestHeaders(a.request_headers, { eventId: d.event_id, subscriptionId: d.subscription_id });
}

function headersOf(json: string | null): Record<string, string> | null {
  return json === null ? null : (JSON.parse(json) as Record<string, string>);
}

export function presentAttempt(a: Attempt, d: Delivery): Static<typeof AttemptView> {
  return {
    number: a.number,
    trigger: a.trigger,
    started_at: toIsoMillis(a.started_at),
    duration_ms: a.duration_ms,
    request_url: a.request_url,
    request_headers: requestHeadersOf(a, d),
    status_code: a.status_code,
    error: a.error,
    response_headers: headersOf(a.response_headers),
    response_excerpt: a.response_excerpt,
  };
}

export function presentDelivery(d: Delivery, targetUrl: string | null): Static<typeof DeliveryView> {
  return {
    id: d.id,
    event_id: d.event_id,
    subscription_id: d.subscription_id,
    target: d.subscription_id === null ? 'callback' : d.listen === 1 ? 'listen' : 'subscription',
    target_url: targetUrl,
    status: d.status,
    attempt_count: d.attempt_count,
    next_attempt_at: d.status === 'pending' ? toIsoMillis(d.next_attempt_at) : null,
    created_at: toIsoMillis(d.created_at),
    updated_at: toIsoMillis(d.updated_at),
    delivered_at: d.delivered_at === null ? null : toIsoMillis(d.delivered_at),
  };
}

/** The URL of each delivery's target now: its subscription's (deleted ones too) or the callback's. */
export async function targetUrls(
  ctx: AppContext,
  accountId: string,
  deliveries: Delivery[],
): Promise<{ urlOf: (d: Delivery) => string | null; subscriptions: Map<string, Subscription>; callback?: Callback }> {
  const ids = [...new Set(deliveries.flatMap((d) => (d.subscription_id === null ? [] : [d.subscription_id])))];
  const subscriptions = new Map((await ctx.store.subscriptionsById(accountId, ids)).map((s) => [s.id, s]));
  const callback = deliveries.some((d) => d.subscription_id === null)
    ? await ctx.store.getCallback(accountId)
    : undefined;
  const urlOf = (d: Delivery) =>
    d.subscription_id === null
      ? callback && callback.url !== ''
        ? callback.url
        : null
      : (subscriptions.get(d.subscription_id)?.target_url ?? null);
  return { urlOf, subscriptions, ...(callback ? { callback } : {}) };
}

/** The latest attempt's request in full, or null before the first attempt (or for one logged before 0.2). */
function lastRequest(
  d: Delivery,
  last: Attempt | undefined,
  event: EventRecord | undefined,
  sub: Subscription | undefined,
): Static<typeof RequestView> | null {
  const headers = last ? requestHeadersOf(last, d) : null;
  if (!last || last.request_url === null || headers === null || !event) return null;
  const secretToken = sub && sub.secret_token_sealed !== null ? MASK : undefined;
  return { method: 'POST', url: last.request_url, headers, body: buildPayload(event, secretToken) };
}

export function deliveryRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/v1/deliveries',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['deliveries'],
          summary: 'The delivery log, newest first, each with its latest attempt',
          querystring: ListQuery,
          response: {
            200: Type.Object({ deliveries: Type.Array(DeliveryView), next_cursor: NextCursor }),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => {
        const q = request.query;
        const accountId = request.principal.accountId;
        const page = await ctx.store.listDeliveries(accountId, {
          limit: q.limit ?? 20,
          cursor: q.cursor,
          subscriptionId: q.subscription_id,
          eventId: q.event_id,
          documentId: q.document_id,
          target: q.target as 'subscription' | 'callback' | 'listen' | undefined,
          status: q.status as Delivery['status'] | undefined,
          ...parseWindow(q.since, q.until),
        });
        const attempts = await ctx.store.listAttempts(page.items.map((d) => d.id));
        const latest = new Map<string, Attempt>();
        for (const a of attempts) latest.set(a.delivery_id, a);
        const { urlOf } = await targetUrls(ctx, accountId, page.items);
        return {
          deliveries: page.items.map((d) => {
            const last = latest.get(d.id);
            return { ...presentDelivery(d, urlOf(d)), last_attempt: last ? presentAttempt(last, d) : null };
          }),
          next_cursor: page.nextCursor,
        };
      },
    );

    app.get<{ Params: Static<typeof IdParams> }>(
      '/v1/deliveries/:id',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['deliveries'],
          summary: 'One delivery with every attempt and the last request it sent',
          params: IdParams,
          response: { 200: DeliveryView, ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        const accountId = request.principal.accountId;
        const delivery = await ctx.store.getDelivery(accountId, request.params.id);
        if (!delivery) throw notFound('delivery');
        const [attempts, event, targets] = await Promise.all([
          ctx.store.listAttempts([delivery.id]),
          ctx.store.getEvent(accountId, delivery.event_id),
          targetUrls(ctx, accountId, [delivery]),
        ]);
        const sub = delivery.subscription_id === null ? undefined : targets.subscriptions.get(delivery.subscription_id);
        return {
          ...presentDelivery(delivery, targets.urlOf(delivery)),
          attempts: attempts.map((a) => presentAttempt(a, delivery)),
          request: lastRequest(delivery, attempts[attempts.length - 1], event, sub),
        };
      },
    );
  };
}
