// Listen sessions, the API behind `countersign listen`: open the token's session (its signing
// secret is the same on every run, so a local app's configuration never changes), follow its
// deliveries on a server-sent-events stream, report each local answer, send heartbeats, end it.
// The secret is shown in the open answer on purpose: the CLI prints it for the local app, as
// `stripe listen` does; it signs only what this token's session forwards to the developer's own
// machine. The hub (delivery/listen-hub.ts) does the delivering.

import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { ListenHub, ListenStream } from '../delivery/listen-hub.js';
import { EVENT_TYPES, splitEventTypes } from '../domain/events.js';
import { newId } from '../domain/ids.js';
import { subscriptionSeal } from '../domain/secret-box.js';
import { generateSigningSecret } from '../domain/signing.js';
import { toIsoMillis } from '../domain/time.js';
import { tokenLookup } from '../domain/tokens.js';
import { CountersignError, notFound } from '../errors.js';
import { listenTarget } from '../store/listen-sessions.js';
import type { Subscription } from '../store/store.js';
import { bearerToken, type Principal } from './auth.js';
import type { AppContext } from './context.js';
import { type LinkSettings, linkBase } from './link-base.js';
import { EventTypeSchema, errors, IdParams } from './schemas.js';

const OpenBody = Type.Object(
  {
    event_types: Type.Optional(
      Type.Array(EventTypeSchema, {
        minItems: 1,
        maxItems: EVENT_TYPES.length,
        uniqueItems: true,
        description: 'the event types to receive; default every type',
      }),
    ),
  },
  { additionalProperties: false },
);
type OpenBody = Static<typeof OpenBody>;

const SessionView = Type.Object({
  id: Type.String({ description: 'the session (`lsn_…`): one per API token, the same on every run' }),
  event_types: Type.Array(Type.String()),
  signing_secret: Type.String({
    description:
      'the Standard Webhooks secret (`whsec_…`) that signs what this session forwards; the same on every run',
  }),
  stream_url: Type.String({ description: 'GET it with Accept: text/event-stream to receive the deliveries' }),
  created_at: Type.String({ format: 'date-time' }),
});

const Headers = Type.Record(Type.String(), Type.String());

const AnswerBody = Type.Object(
  {
    delivery_id: Type.String({ maxLength: 64 }),
    attempt: Type.Integer({ minimum: 1 }),
    forwarded_to: Type.String({ minLength: 1, maxLength: 2048, description: 'the local URL it was forwarded to' }),
    duration_ms: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
    status_code: Type.Union([Type.Integer({ minimum: 100, maximum: 599 }), Type.Null()], {
      description: 'the local answer’s status; null when there was none',
    }),
    response_headers: Type.Optional(Headers),
    response_excerpt: Type.Optional(Type.String({ maxLength: 4096 })),
    error: Type.Optional(
      Type.String({ minLength: 1, maxLength: 500, description: 'why there was no answer (with status_code null)' }),
    ),
  },
  { additionalProperties: false },
);
type AnswerBody = Static<typeof AnswerBody>;

const ABOUT_STREAM =
  'A server-sent-events stream. Events: `ready` (the session), `delivery` ({delivery_id, attempt, ' +
  'event_id, event_type, headers, body}: forward `body` with exactly these `headers`, then report the ' +
  'answer to …/answers), `ping` (every 10 s), and before the server closes the stream `replaced` (another ' +
  'stream took the session over: do not reconnect), `ended` (the session was ended), `revoked` (the token ' +
  'that opened the stream was revoked or expired: do not reconnect) or `closing` (the server is stopping: ' +
  'reconnect). A session belongs to the token that opened it; other tokens get a 404. A stream the CLI sends no heartbeat on for 35 s is closed. At most ' +
  '10 deliveries are written and not yet answered at a time; those unanswered when a stream closes are ' +
  'written again on the next stream.';

export function listenRoutes(ctx: AppContext, hub: ListenHub, links: LinkSettings): FastifyPluginAsync {
  const view = (s: Subscription, base: string, signingSecret: string): Static<typeof SessionView> => ({
    id: s.id,
    event_types: splitEventTypes(s.event_types),
    signing_secret: signingSecret,
    stream_url: `${base}/v1/listen/sessions/${s.id}/stream`,
    created_at: toIsoMillis(s.created_at),
  });

  /**
   * The session, if it is this token's: a session belongs to the token that opened it, so another
   * token of the same account cannot follow its stream, answer for it or end it (404, as for
   * another account's). An admin token may end any of its account's sessions.
   */
  async function session(principal: Principal, id: string, adminMay = false): Promise<Subscription> {
    const found = await ctx.store.getListenSession(principal.accountId, id);
    const mine = found?.target_url === listenTarget(principal.tokenId);
    if (!found || !(mine || (adminMay && principal.scopes.includes('admin')))) throw notFound('listen session');
    return found;
  }

  /**
   * 404 unless the session is this token's. A stream of it held here proves that without a
   * query, so answers and heartbeats (one per delivery, one every 10 s) read nothing.
   */
  async function requireSession(principal: Principal, id: string): Promise<void> {
    if (!hub.holds(principal.tokenId, id)) await session(principal, id);
  }

  /** Whether the token still admits its holder: not revoked (by any process) and not expired. */
  async function stillAdmitted(lookup: string): Promise<boolean> {
    const row = ctx.store.cachedToken(lookup) ?? (await ctx.store.findToken(lookup));
    return row !== undefined && row.revokedAt === null && (row.expiresAt === null || row.expiresAt > Date.now());
  }

  return async (app) => {
    app.addHook('preClose', async () => {
      await hub.stop();
    });

    app.post<{ Body: OpenBody | undefined }>(
      '/v1/listen/sessions',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['listen'],
          summary: 'Open this token’s listen session (countersign listen)',
          description:
            'Makes the token’s session, or brings it back with these event types. Published events of those ' +
            'types get a delivery to the session, queued, signed, retried and logged as for a subscription, ' +
            'and written to its stream instead of being POSTed by the server.',
          body: Type.Optional(OpenBody),
          response: { 200: SessionView, ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        const accountId = request.principal.accountId;
        // The id a new session would get, so that its secret is sealed for that row.
        const newSessionId = newId('lsn');
        const opened = await ctx.store.openListenSession({
          accountId,
          tokenId: request.principal.tokenId,
          eventTypes: request.body?.event_types ?? [...EVENT_TYPES],
          newId: newSessionId,
          newSigningSecretSealed: ctx.secrets.seal(
            generateSigningSecret(),
            subscriptionSeal('signing_secret', { id: newSessionId, account_id: accountId }),
          ),
          now: Date.now(),
        });
        const base = linkBase(links, request);
        return view(
          opened,
          base,
          ctx.secrets.open(opened.signing_secret_sealed, subscriptionSeal('signing_secret', opened)),
        );
      },
    );

    app.get<{ Params: Static<typeof IdParams> }>(
      '/v1/listen/sessions/:id/stream',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['listen'],
          summary: 'Follow the session’s deliveries (server-sent events)',
          description: ABOUT_STREAM,
          params: IdParams,
          response: {
            200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
            ...errors(401, 403, 404),
          },
        },
      },
      async (request, reply) => {
        const { accountId, tokenId } = request.principal;
        const found = await session(request.principal, request.params.id);
        // Authenticated, so the request has a token of the right shape.
        const lookup = tokenLookup(bearerToken(request) ?? '');
        if (found.status !== 'active') {
          throw new CountersignError(
            'conflict',
            'this listen session has ended; open it again with POST /v1/listen/sessions',
          );
        }
        reply.hijack();
        const raw = reply.raw;
        raw.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
          'x-accel-buffering': 'no',
          // A stream's connection is never reused: when the server ends the stream (stopping, a newer
          // stream), the socket closes with it, and nothing keeps the server from shutting down.
          connection: 'close',
        });
        raw.flushHeaders();
        let open = true;
        const stream: ListenStream = {
          send(event, data) {
            if (!open || raw.destroyed) return false;
            raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
            return true;
          },
          end() {
            if (!open) return;
            open = false;
            raw.end();
          },
        };
        stream.send('ready', { session: found.id, event_types: splitEventTypes(found.event_types) });
        const detach = hub.attach(accountId, tokenId, found.id, stream);
        // The stream lives as long as its token does: revoked (here, by the CLI, by another
        // process) or expired, it is told so and closed within tokenCheckMs.
        const watch = setInterval(() => {
          const check = lookup === undefined ? Promise.resolve(false) : stillAdmitted(lookup);
          check.then(
            (admitted) => {
              if (admitted || !open) return;
              stream.send('revoked', { message: 'the token that opened this stream was revoked or has expired' });
              stream.end();
            },
            (err: unknown) => request.log.warn({ err, session: found.id }, 'could not check a listen stream’s token'),
          );
        }, hub.tokenCheckMs);
        watch.unref();
        raw.on('close', () => {
          open = false;
          clearInterval(watch);
          detach();
        });
      },
    );

    app.post<{ Params: Static<typeof IdParams>; Body: AnswerBody }>(
      '/v1/listen/sessions/:id/answers',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['listen'],
          summary: 'Report the local answer to a delivery the stream carried',
          description:
            'The answer is the attempt, as a receiver’s answer is for a subscription: 2xx delivers, anything ' +
            'else (or status_code null with the error) is a failed attempt, retried on the retry schedule. ' +
            '409 when the delivery is not awaiting an answer on a stream of this server (the stream closed, ' +
            'and it will be written again).',
          params: IdParams,
          body: AnswerBody,
          response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const body = request.body;
        await requireSession(request.principal, request.params.id);
        const outcome = await hub.answer(request.params.id, {
          deliveryId: body.delivery_id,
          attempt: body.attempt,
          forwardedTo: body.forwarded_to,
          durationMs: body.duration_ms,
          answer:
            body.status_code === null
              ? { error: body.error ?? 'no answer' }
              : {
                  statusCode: body.status_code,
                  excerpt: body.response_excerpt ?? '',
                  headers: body.response_headers ?? {},
                },
        });
        if (outcome === 'no_stream') {
          throw new CountersignError('conflict', 'no stream of this listen session is connected to this server');
        }
        if (outcome === 'not_in_flight') {
          throw new CountersignError(
            'conflict',
            'this delivery attempt is not awaiting an answer on this session’s stream',
          );
        }
        return reply.code(204).send();
      },
    );

    app.post<{ Params: Static<typeof IdParams> }>(
      '/v1/listen/sessions/:id/heartbeat',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['listen'],
          summary: 'Tell the server the CLI is still there',
          description:
            'Send one every 10 s. 409 when no stream of the session is connected to this server: the CLI’s ' +
            'stream is dead though its socket looks open, and it should reconnect.',
          params: IdParams,
          response: { 204: Type.Null(), ...errors(401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        await requireSession(request.principal, request.params.id);
        if (!hub.heartbeat(request.params.id)) {
          throw new CountersignError('conflict', 'no stream of this listen session is connected to this server');
        }
        return reply.code(204).send();
      },
    );

    app.delete<{ Params: Static<typeof IdParams> }>(
      '/v1/listen/sessions/:id',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['listen'],
          summary: 'End the session: its stream closes and its deliveries not yet made are cancelled',
          description: 'Opening it again later (POST /v1/listen/sessions) keeps its id and signing secret.',
          params: IdParams,
          response: {
            200: Type.Object({ cancelled: Type.Integer({ description: 'deliveries cancelled' }) }),
            ...errors(401, 403, 404),
          },
        },
      },
      async (request) => {
        await session(request.principal, request.params.id, true);
        const cancelled = await hub.end(request.principal.accountId, request.params.id);
        if (cancelled === undefined) throw notFound('listen session');
        return { cancelled };
      },
    );
  };
}
