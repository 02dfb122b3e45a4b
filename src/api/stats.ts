// Figures for the portal's dashboard. The overview counts the account's deliveries made in a
// window by their status now and lists the subscriptions that need attention; each account's
// answer is kept for 5 s in this process, so a dashboard polling it (or many open at once) cannot
// load the database. The per-minute attempts read the rollup recordAttempts keeps (attempt_stats,
// a few rows per minute) and are not cached.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { DELIVERY_STATUSES, type DeliveryStatus } from '../domain/delivery-status.js';
import { toIsoMillis } from '../domain/time.js';
import { GenerationCache } from '../store/generation-cache.js';
import { CircuitView, circuitsFor } from './circuit.js';
import type { AppContext } from './context.js';
import { errors } from './schemas.js';

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
/** How long an overview answer is reused. */
export const OVERVIEW_CACHE_MS = 5000;
/** Deliveries the overview counts at most, the newest of its window (each is a row read). */
export const OVERVIEW_COUNT_CAP = 50_000;
/** Subscriptions the overview lists at most (it counts them all). */
export const ATTENTION_LIMIT = 20;

const OverviewQuery = Type.Object(
  {
    hours: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 168, default: 24, description: 'the window, ending now' }),
    ),
  },
  { additionalProperties: false },
);

const Count = Type.Integer({ minimum: 0 });

const Overview = Type.Object({
  since: Type.String({ format: 'date-time' }),
  until: Type.String({ format: 'date-time' }),
  deliveries: Type.Object(
    Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, Count])) as Record<DeliveryStatus, typeof Count>,
    {
      description: 'deliveries created in the window, by their status now',
    },
  ),
  complete: Type.Boolean({
    description: `false when the window holds more than ${OVERVIEW_COUNT_CAP.toLocaleString('en')} deliveries: the counts are then of the newest ${OVERVIEW_COUNT_CAP.toLocaleString('en')}`,
  }),
  attention: Type.Object({
    total: Type.Integer({ description: 'live subscriptions that are disabled or whose attempts are failing' }),
    subscriptions: Type.Array(
      Type.Object({
        id: Type.String(),
        target_url: Type.String(),
        status: Type.String({ enum: ['active', 'paused', 'disabled'] }),
        failing_since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
          description: 'since when every attempt has failed; null after a success',
        }),
        disabled_reason: Type.Union([Type.String(), Type.Null()]),
        circuit: CircuitView,
      }),
      { description: `disabled ones first, then the longest failing; at most ${ATTENTION_LIMIT}` },
    ),
  }),
});
type Overview = Static<typeof Overview>;

const AttemptsQuery = Type.Object(
  {
    minutes: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1440, default: 60, description: 'how many minutes, up to now' }),
    ),
  },
  { additionalProperties: false },
);

const AttemptsPerMinute = Type.Object({
  minutes: Type.Array(
    Type.Object({
      start: Type.String({ format: 'date-time', description: 'the minute’s start' }),
      delivered: Type.Integer({ description: 'attempts that delivered' }),
      failed: Type.Integer({ description: 'attempts that did not (a retried delivery counts each one)' }),
    }),
    { description: 'one per minute, oldest first, the last one the current (partial) minute' },
  ),
});

export function statsRoutes(ctx: AppContext): FastifyPluginAsync {
  // Bounded whatever the number of accounts; an entry is replaced when it is older than the cache time.
  const overviews = new GenerationCache<string, { at: number; answer: Overview }>(1000);

  async function overview(accountId: string, hours: number, now: number): Promise<Overview> {
    const since = now - hours * HOUR_MS;
    const [counts, attention] = await Promise.all([
      ctx.store.deliveryCountsSince(accountId, since, OVERVIEW_COUNT_CAP),
      ctx.store.subscriptionsNeedingAttention(accountId, ATTENTION_LIMIT),
    ]);
    const circuitOf = await circuitsFor(
      ctx.store,
      accountId,
      attention.subscriptions.map((s) => s.id),
    );
    return {
      since: toIsoMillis(since),
      until: toIsoMillis(now),
      deliveries: counts.counts,
      complete: counts.complete,
      attention: {
        total: attention.total,
        subscriptions: attention.subscriptions.map((s) => ({
          id: s.id,
          target_url: s.target_url,
          status: s.status,
          failing_since: s.failing_since === null ? null : toIsoMillis(s.failing_since),
          disabled_reason: s.disabled_reason,
          circuit: circuitOf(s.id),
        })),
      },
    };
  }

  return async (app) => {
    app.get<{ Querystring: Static<typeof OverviewQuery> }>(
      '/v1/stats/overview',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['stats'],
          summary: 'Deliveries of the last hours by status, and the subscriptions that need attention',
          description:
            `Each account’s answer is computed at most once per ${OVERVIEW_CACHE_MS / 1000} s per process and ` +
            'reused in between (`until` says when it was computed), so polling it costs the database nothing more.',
          querystring: OverviewQuery,
          response: { 200: Overview, ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        const hours = request.query.hours ?? 24;
        const key = `${request.principal.accountId} ${hours}`;
        const now = Date.now();
        const cached = overviews.get(key);
        if (cached && now - cached.at < OVERVIEW_CACHE_MS) return cached.answer;
        const answer = await overview(request.principal.accountId, hours, now);
        overviews.set(key, { at: now, answer });
        return answer;
      },
    );

    app.get<{ Querystring: Static<typeof AttemptsQuery> }>(
      '/v1/stats/attempts',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['stats'],
          summary: 'Delivery attempts per minute, successful and failed, up to the current minute',
          querystring: AttemptsQuery,
          response: { 200: AttemptsPerMinute, ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        const count = request.query.minutes ?? 60;
        const now = Date.now();
        const until = now - (now % MINUTE_MS) + MINUTE_MS;
        const since = until - count * MINUTE_MS;
        const rows = await ctx.store.attemptsPerMinute(request.principal.accountId, since, until);
        const byMinute = new Map(rows.map((r) => [r.minute, r]));
        const minutes: Static<typeof AttemptsPerMinute>['minutes'] = [];
        for (let minute = since; minute < until; minute += MINUTE_MS) {
          const row = byMinute.get(minute);
          minutes.push({ start: toIsoMillis(minute), delivered: row?.delivered ?? 0, failed: row?.failed ?? 0 });
        }
        return { minutes };
      },
    );
  };
}
