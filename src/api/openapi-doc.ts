// What /openapi.json says beyond each route's own schema: the webhooks countersign sends (OpenAPI
// 3.1's `webhooks`: every event's payload and every header), and the answers any route can give
// whatever it does (a bad or oversized body, a wrong media type or encoding, no token, too many
// requests, the database away), added to every route as it is registered, and the scope each
// route needs.
import type { FastifyInstance, RouteOptions } from 'fastify';
// @fastify/swagger's own types for the document (openapi-types comes with it).
import type { OpenAPIV3_1 } from 'openapi-types';
import { isOperationalEventType, type OperationalEventType, SUBSCRIBABLE_EVENT_TYPES } from '../domain/events.js';

const ERROR_REF = { $ref: 'ErrorResponse' };

/** Answers every authenticated API route can give, whatever else it answers. */
const API_STATUSES = {
  400: 'The request is malformed: a field, a query parameter, a body on a route that takes none, or JSON keys such as __proto__.',
  401: 'The API token is missing, invalid, revoked or expired.',
  403: 'The token lacks the scope this route needs.',
  413: 'The request body is larger than the route takes: 1 MiB for POST /v1/events, 10 MiB for POST /v1/events/batch, 64 KiB elsewhere.',
  415: 'The body is not application/json, or has a Content-Encoding countersign does not decode.',
  429: 'The account’s rate limit (all its tokens together) is spent; Retry-After says when to come back.',
  500: 'A bug in countersign; it is logged.',
  503: 'The database cannot answer right now; nothing was changed. Retry-After: 1.',
} as const;

/** Answers the unauthenticated operations routes can give besides their own. */
const OPS_STATUSES = {
  413: API_STATUSES[413],
  415: API_STATUSES[415],
  500: API_STATUSES[500],
} as const;

const OPS_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Adds the common answers to every documented route. Registered before the routes (an onRoute hook
 * sees only routes added after it); a route's own description of a status wins.
 */
export function documentCommonAnswers(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const schema = route.schema as
      | (Record<string, unknown> & { hide?: boolean; response?: Record<string, unknown> })
      | undefined;
    if (!schema || schema.hide) return;
    const url = route.url;
    const common = OPS_ROUTES.has(url) ? OPS_STATUSES : API_STATUSES;
    const response = { ...(schema.response ?? {}) };
    for (const [status, description] of Object.entries(common)) {
      if (!(status in response)) response[status] = { ...ERROR_REF, description };
    }
    schema.response = response;
    // OpenAPI 3.1 lets a requirement of a scheme other than OAuth list the roles it needs: the
    // token scope, so a client (the portal's generated one) can tell what a token may call.
    const scope = (route.config as { scope?: string } | undefined)?.scope;
    if (scope !== undefined && schema.security === undefined) schema.security = [{ bearer: [scope] }];
  });
}

const header = (name: string, description: string, required: boolean, example?: string) => ({
  name,
  in: 'header',
  required,
  description,
  schema: { type: 'string', ...(example ? { examples: [example] } : {}) },
});

const WEBHOOK_HEADERS = [
  header('content-type', 'Always application/json.', true, 'application/json'),
  header('user-agent', 'countersign and its version.', true, 'countersign/0.1.0'),
  header(
    'webhook-id',
    'The event id (Standard Webhooks): the same on every retry and every target; dedupe on it.',
    true,
    'evt_01JF6Q3Z5W8N2M4K7P9R1T3V5X',
  ),
  header('webhook-timestamp', 'When this attempt was signed, in Unix seconds.', true, '1766068205'),
  header(
    'webhook-signature',
    'Space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` entries, one per signing secret in use ' +
      '(two or more while a rotated secret is in its grace period). Always sent to subscriptions; sent to the ' +
      'account callback once it has a signing secret (POST /api/sign/v1/callback/rotate-secret).',
    false,
    'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
  ),
  header(
    'webhook-subscription-id',
    'The subscription this delivery is for, so a receiver with several can pick the secret before verifying. ' +
      'Absent on deliveries to the account callback.',
    false,
    'sub_01JF6Q3Z5W8N2M4K7P9R1T3V5X',
  ),
  header(
    'authorization',
    'Account callback only: `Basic …` or `Bearer …` as registered with authType Basic or Bearer.',
    false,
  ),
];

/** `data` of endpoint.circuit_opened and endpoint.circuit_closed. */
function circuitData(type: 'endpoint.circuit_opened' | 'endpoint.circuit_closed') {
  const time = (description: string) => ({ type: ['string', 'null'], format: 'date-time', description });
  const properties = {
    subscription_id: {
      type: ['string', 'null'],
      description: 'The subscription whose endpoint it is; null for the account callback.',
    },
    target_url: { type: 'string', format: 'uri', description: 'The endpoint.' },
    state: {
      type: 'string',
      enum: type === 'endpoint.circuit_opened' ? ['open'] : ['closed'],
      description:
        type === 'endpoint.circuit_opened'
          ? 'Open: its deliveries are postponed, their attempts untouched, until a probe is answered.'
          : 'Closed: the endpoint answered; its postponed deliveries are on their way.',
    },
    reason: { type: ['string', 'null'], description: 'The last fault, as the delivery log words it.' },
    consecutive_failures: { type: 'integer', description: 'Faults in a row (0 once closed).' },
    opened_at: time('When it opened; null once closed.'),
    next_probe_at: time('When the probe goes; null once closed.'),
  };
  return { type: 'object', required: Object.keys(properties), properties, additionalProperties: false };
}

/** `data` of the operational events countersign makes about its own deliveries. */
function operationalData(type: OperationalEventType) {
  if (type === 'endpoint.circuit_opened' || type === 'endpoint.circuit_closed') return circuitData(type);
  const common = {
    subscription_id: {
      type: type === 'delivery.failed' ? ['string', 'null'] : 'string',
      description:
        type === 'delivery.failed'
          ? 'The subscription the delivery was for; null for a delivery to the account callback.'
          : 'The subscription disabled.',
    },
    target_url: { type: 'string', format: 'uri', description: 'Where its deliveries go.' },
    reason: { type: 'string', description: 'Why, in words: the last answer, or the rule that disabled it.' },
  };
  if (type === 'subscription.disabled') {
    return { type: 'object', required: Object.keys(common), properties: common, additionalProperties: false };
  }
  const failed = {
    ...common,
    delivery_id: { type: 'string' },
    event_id: { type: 'string' },
    event_type: { type: 'string', description: 'The type of the event whose delivery failed.' },
    attempts: { type: 'integer', description: 'Attempts made, in all.' },
  };
  return { type: 'object', required: Object.keys(failed), properties: failed, additionalProperties: false };
}

const DOCUMENT_DATA = (type: string) => ({
  type: 'object',
  required: ['document_id', 'signer_email', 'audit_url'],
  properties: {
    document_id: { type: 'string' },
    signer_email: { type: 'string', format: 'email' },
    audit_url: { type: 'string', format: 'uri' },
    ...(type === 'document.declined' ? { reason: { type: 'string' } } : {}),
    title: { type: 'string', description: 'Events of the documents lifecycle (POST /v1/documents …): the title.' },
    external_id: { type: ['string', 'null'], description: 'Documents lifecycle: the platform’s own id, or null.' },
    signer_id: { type: 'string', description: 'Documents lifecycle: the signer the event names (sgn_…).' },
    signer_name: { type: 'string', description: 'Documents lifecycle: the signer’s name, when one was given.' },
  },
  additionalProperties: true,
  description:
    'As published: the seed’s fields plus any of the platform’s own. Events the documents lifecycle makes also ' +
    'carry title, external_id and signer_id; their audit_url opens the document’s audit trail without a token.',
});

/** The payload of one event type, as every target receives it. */
function payloadSchema(type: string) {
  return {
    type: 'object',
    required: ['event', 'timestamp', 'data', 'id'],
    properties: {
      event: { type: 'string', const: type },
      timestamp: { type: 'string', format: 'date-time', description: 'When it happened, to the second (the seed).' },
      data: isOperationalEventType(type) ? operationalData(type) : DOCUMENT_DATA(type),
      id: { type: 'string', description: 'The event id, as in webhook-id.' },
      test: { type: 'boolean', const: true, description: 'Only on test events (POST …/test).' },
      secret_token: {
        type: 'string',
        description:
          'The subscription’s secret_token, when it has one (the seed’s verification: compare it, answer 401 if it differs).',
      },
    },
    additionalProperties: false,
  };
}

const RECEIVER_ANSWERS = {
  '2XX': { description: 'Delivered.' },
  '410': { description: 'Gone: the subscription is disabled (a callback delivery just fails).' },
  default: {
    description:
      'Anything else (3xx, which is never followed, 4xx such as 401 for a wrong secret_token, 5xx, a timeout) is ' +
      'retried on the schedule; Retry-After on 429 and 503 is honoured.',
  },
};

/** OpenAPI 3.1 `webhooks`: one entry per event type. */
export function webhooksDocument(): Record<string, OpenAPIV3_1.PathItemObject> {
  const out: Record<string, OpenAPIV3_1.PathItemObject> = {};
  for (const type of SUBSCRIBABLE_EVENT_TYPES) {
    const item = {
      post: {
        summary: isOperationalEventType(type)
          ? `${type}, an operational event countersign makes itself, POSTed to the subscriptions that take it (never to the account callback)`
          : `${type}, as countersign POSTs it to subscriptions and the account callback`,
        tags: ['webhooks'],
        parameters: WEBHOOK_HEADERS,
        requestBody: { required: true, content: { 'application/json': { schema: payloadSchema(type) } } },
        responses: RECEIVER_ANSWERS,
      },
    };
    // Plain JSON Schema 2020-12, as OpenAPI 3.1 takes it; the typings (merged by @fastify/swagger
    // for several OpenAPI versions) cannot follow it. test/openapi.test.ts validates the document.
    out[type] = item as unknown as OpenAPIV3_1.PathItemObject;
  }
  return out;
}
