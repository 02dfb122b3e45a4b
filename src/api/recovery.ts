// Putting deliveries right: redeliver one now, replay a subscription's failures over a window,
// recover the events a subscription never got (published while it was disabled, say), deliver one
// event to one subscription again, and send a test event.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { splitEventTypes } from '../domain/events.js';
import { toIsoMillis } from '../domain/time.js';
import { CountersignError, invalidField, notFound } from '../errors.js';
import type { AppContext } from './context.js';
import { DeliveryView, presentDelivery } from './deliveries.js';
import { EventTypeSchema, errors, IdParams } from './schemas.js';
import { parseWindow, timestampField } from './window.js';

/** Deliveries one recover call makes at most: one bounded transaction, so publishing never waits long. */
export const RECOVER_LIMIT = 1000;

const WindowBody = Type.Object(
  {
    since: Type.String({ description: 'RFC 3339' }),
    until: Type.Optional(Type.String({ description: 'RFC 3339; default now' })),
  },
  { additionalProperties: false },
);
type WindowBody = Static<typeof WindowBody>;

const Recovered = Type.Object({
  recovered: Type.Integer({ description: 'deliveries made (held while the subscription is paused or disabled)' }),
  complete: Type.Boolean({
    description: 'false when the window holds more: call again (with next_since, or as before)',
  }),
  next_since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

const DeliverBody = Type.Object({ subscription_id: Type.String({ maxLength: 64 }) }, { additionalProperties: false });

const TestBody = Type.Object(
  {
    event_type: Type.Optional({
      ...EventTypeSchema,
      description: 'which of the subscription’s event types to send; its first by default',
    }),
  },
  { additionalProperties: false },
);

/** A sample event's data: the seed's fields, pointing nowhere real. */
const TEST_DATA = {
  document_id: 'doc_test',
  signer_email: 'signer@example.com',
  audit_url: 'https://example.com/audit/doc_test',
};

function window(body: WindowBody, now: number): { since: number; until: number } {
  parseWindow(body.since, body.until);
  return {
    since: timestampField('since', body.since),
    until: body.until === undefined ? now + 1 : timestampField('until', body.until),
  };
}

export function recoveryRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Params: Static<typeof IdParams> }>(
      '/v1/deliveries/:id/redeliver',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['deliveries'],
          summary: 'Queue one manual attempt now',
          params: IdParams,
          response: { 202: DeliveryView, ...errors(401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const outcome = await ctx.store.requestRedelivery(request.principal.accountId, request.params.id, Date.now());
        if (outcome === undefined) throw notFound('delivery');
        if (outcome === 'in_flight')
          throw new CountersignError('delivery_in_flight', 'this delivery is being sent right now; try again shortly');
        if (outcome === 'waiting')
          throw new CountersignError(
            'conflict',
            'this delivery waits behind an earlier delivery of its document (the subscription orders by document); it goes once that one is delivered or fails',
          );
        if (outcome === 'cancelled')
          throw new CountersignError('conflict', 'this delivery was cancelled with its subscription');
        return reply.code(202).send(presentDelivery(outcome, null));
      },
    );

    app.post<{ Params: Static<typeof IdParams>; Body: WindowBody }>(
      '/v1/webhooks/subscriptions/:id/replay',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Re-queue every failed delivery created in [since, until)',
          params: IdParams,
          body: WindowBody,
          response: { 202: Type.Object({ requeued: Type.Integer() }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const now = Date.now();
        const { since, until } = window(request.body, now);
        const sub = await ctx.store.getSubscription(request.principal.accountId, request.params.id);
        if (!sub) throw notFound('subscription');
        const requeued = await ctx.store.replayFailed(request.principal.accountId, sub.id, since, until, now);
        return reply.code(202).send({ requeued });
      },
    );

    app.post<{ Params: Static<typeof IdParams>; Body: WindowBody }>(
      '/v1/webhooks/subscriptions/:id/recover',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary:
            'Make deliveries for the events of its types created in [since, until) that this subscription never got',
          description:
            'Events published while a subscription was disabled make no delivery; this brings them back. Events from ' +
            'before the subscription was created, and test events, are not recovered. At most 1,000 deliveries per call, ' +
            'oldest first: when `complete` is false, call again. Calling again with the same window is safe.',
          params: IdParams,
          body: WindowBody,
          response: { 202: Recovered, ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const now = Date.now();
        const { since, until } = window(request.body, now);
        const result = await ctx.store.recoverMissed(
          request.principal.accountId,
          request.params.id,
          since,
          until,
          now,
          RECOVER_LIMIT,
        );
        if (!result) throw notFound('subscription');
        return reply.code(202).send({
          recovered: result.recovered,
          complete: result.continueFrom === undefined,
          next_since: result.continueFrom === undefined ? null : toIsoMillis(result.continueFrom),
        });
      },
    );

    app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof DeliverBody> }>(
      '/v1/events/:id/deliver',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['events'],
          summary: 'Send this event to one subscription again, whatever became of earlier deliveries',
          params: IdParams,
          body: DeliverBody,
          response: { 202: DeliveryView, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const outcome = await ctx.store.deliverEvent(
          request.principal.accountId,
          request.params.id,
          request.body.subscription_id,
          Date.now(),
        );
        if (!outcome.ok) {
          if (outcome.reason === 'event_not_found') throw notFound('event');
          if (outcome.reason === 'subscription_not_found') throw notFound('subscription');
          if (outcome.reason === 'event_erased') {
            throw new CountersignError(
              'conflict',
              'this event was erased (POST /v1/erasure): there is nothing to send',
            );
          }
          throw new CountersignError('conflict', 'that subscription does not take events of this type');
        }
        const sub = await ctx.store.getSubscription(request.principal.accountId, request.body.subscription_id);
        return reply.code(202).send(presentDelivery(outcome.delivery, sub?.target_url ?? null));
      },
    );

    app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof TestBody> | undefined }>(
      '/v1/webhooks/subscriptions/:id/test',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Send a test event to this subscription only; it shows in the log',
          description:
            'The payload carries `"test": true` and sample data. Test events are kept out of GET /v1/events unless ' +
            '`include_tests=true` is given, and are never recovered.',
          params: IdParams,
          body: Type.Optional(TestBody),
          response: {
            202: Type.Object({ event_id: Type.String(), event_type: Type.String(), deliveries: Type.Integer() }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request, reply) => {
        const sub = await ctx.store.getSubscription(request.principal.accountId, request.params.id);
        if (!sub) throw notFound('subscription');
        const types = splitEventTypes(sub.event_types);
        const type = request.body?.event_type ?? (types[0] as string);
        if (!types.includes(type)) {
          throw invalidField('event_type', `this subscription does not take ${type} (it takes ${types.join(', ')})`);
        }
        const result = await ctx.publisher.add({
          accountId: sub.account_id,
          type,
          dataJson: JSON.stringify(TEST_DATA),
          documentId: TEST_DATA.document_id,
          occurredAt: Date.now(),
          onlySubscriptionId: sub.id,
          test: true,
        });
        if (!result.ok) throw new CountersignError('internal_error', 'test event was not queued');
        return reply
          .code(202)
          .send({ event_id: result.event.id, event_type: type, deliveries: result.event.deliveryCount });
      },
    );
  };
}
