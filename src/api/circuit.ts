// An endpoint's circuit breaker as the API shows it (on subscriptions and the account callback),
// and the one action on it: probe now, for an operator who believes the endpoint is back.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { Circuit } from '../domain/circuit.js';
import { toIsoMillis } from '../domain/time.js';
import { CountersignError, notFound } from '../errors.js';
import type { Store } from '../store/store.js';
import type { AppContext } from './context.js';
import { errors, IdParams } from './schemas.js';

export const CircuitView = Type.Object(
  {
    state: Type.String({
      enum: ['closed', 'open', 'half_open'],
      description:
        '`closed`: deliveries go as usual. `open`: after a run of faults (timeouts, connection failures, 5xx, 429) ' +
        'deliveries are postponed, their attempts untouched, until a probe succeeds. `half_open`: one delivery is ' +
        'being sent as the probe; its answer closes the circuit or opens it again for twice as long.',
    }),
    consecutive_failures: Type.Integer({ description: 'faults in a row since the last answer that was not one' }),
    reason: Type.Union([Type.String(), Type.Null()], { description: 'the last fault, as the delivery log words it' }),
    opened_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    next_probe_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description:
        'open: when the probe goes; half_open: when an unanswered probe is given up and another may go; null when closed',
    }),
  },
  { description: 'the endpoint’s circuit breaker' },
);
export type CircuitView = Static<typeof CircuitView>;

const CLOSED_VIEW: CircuitView = {
  state: 'closed',
  consecutive_failures: 0,
  reason: null,
  opened_at: null,
  next_probe_at: null,
};

export function presentCircuit(circuit: Circuit | undefined): CircuitView {
  if (circuit === undefined) return CLOSED_VIEW;
  return {
    state: circuit.state,
    consecutive_failures: circuit.failures,
    reason: circuit.reason,
    opened_at: circuit.state === 'closed' || circuit.openedAt === null ? null : toIsoMillis(circuit.openedAt),
    next_probe_at: circuit.state === 'closed' || circuit.retryAt === null ? null : toIsoMillis(circuit.retryAt),
  };
}

/** The circuits of these endpoints (subscription ids, or the account id for its callback), by id. */
export async function circuitsFor(
  store: Store,
  accountId: string,
  endpoints: string[],
): Promise<(endpoint: string) => CircuitView> {
  const circuits = endpoints.length === 0 ? new Map() : await store.circuitsOf(accountId, endpoints);
  return (endpoint) => presentCircuit(circuits.get(endpoint));
}

/** POST …/circuit/probe for a subscription, and for the account callback. */
export function circuitRoutes(ctx: AppContext): FastifyPluginAsync {
  const probe = async (accountId: string, endpoint: string) => {
    const now = Date.now();
    const moved = await ctx.store.probeNow(accountId, endpoint, now);
    if (moved) return { circuit: presentCircuit(moved.circuit), probing: moved.probing };
    const [current] = [...(await ctx.store.circuitsOf(accountId, [endpoint])).values()];
    const state = current?.state ?? 'closed';
    throw new CountersignError(
      'conflict',
      state === 'half_open'
        ? 'a probe is already being sent: its answer decides the circuit'
        : 'the circuit is closed: deliveries are going as usual',
    );
  };
  const Answer = Type.Object({
    circuit: CircuitView,
    probing: Type.Boolean({
      description:
        'true: a postponed delivery goes now as the probe. false: none is waiting; the next delivery published goes as the probe.',
    }),
  });
  return async (app) => {
    app.post<{ Params: Static<typeof IdParams> }>(
      '/v1/webhooks/subscriptions/:id/circuit/probe',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Probe an open circuit now instead of at the end of its window',
          description:
            'The oldest postponed delivery is sent at once as the probe: a success closes the circuit and the ' +
            'postponed deliveries follow; a fault opens it again. 409 when the circuit is not open.',
          params: IdParams,
          response: { 200: Answer, ...errors(401, 403, 404, 409) },
        },
      },
      async (request) => {
        const accountId = request.principal.accountId;
        const sub = await ctx.store.getSubscription(accountId, request.params.id);
        if (!sub) throw notFound('subscription');
        return probe(accountId, sub.id);
      },
    );
    app.post(
      '/api/sign/v1/callback/circuit/probe',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['callback'],
          summary: 'Probe the account callback’s open circuit now',
          response: { 200: Answer, ...errors(401, 403, 409) },
        },
      },
      async (request) => probe(request.principal.accountId, request.principal.accountId),
    );
  };
}
