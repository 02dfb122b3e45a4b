// Every API call the portal makes, in one place, each typed from the OpenAPI document. Screens
// call these and never build a request themselves.
import { type Answer, api, type paths, unwrap } from './client';

export type Me = Answer<'/v1/me', 'get'>;
export type Overview = Answer<'/v1/stats/overview', 'get'>;
export type AttemptsPerMinute = Answer<'/v1/stats/attempts', 'get'>;
export type SubscriptionPage = Answer<'/v1/webhooks/subscriptions', 'get'>;
export type Subscription = Answer<'/v1/webhooks/subscriptions/{id}', 'get'>['subscriptions'][number];
export type CreatedSubscription = Answer<'/v1/webhooks/subscriptions', 'post'>['subscriptions'][number];
export type Callback = Answer<'/api/sign/v1/callback', 'get'>;
export type CircuitView = Subscription['circuit'];
export type EventPage = Answer<'/v1/events', 'get'>;
export type EventRecord = Answer<'/v1/events/{id}', 'get'>;
export type DeliveryPage = Answer<'/v1/deliveries', 'get'>;
export type DeliverySummary = DeliveryPage['deliveries'][number];
export type Delivery = Answer<'/v1/deliveries/{id}', 'get'>;
export type Attempt = NonNullable<Delivery['attempts']>[number];
export type DocumentPage = Answer<'/v1/documents', 'get'>;
export type DocumentView = Answer<'/v1/documents/{id}', 'get'>;
export type Signer = DocumentView['signers'][number];
export type AuditVerdict = Answer<'/v1/documents/{id}/audit/verify', 'get'>;

/** A list route's query parameters. */
type Query<P extends keyof paths> = paths[P] extends { get: { parameters: { query?: infer Q } } }
  ? NonNullable<Q>
  : never;

export type SubscriptionQuery = Query<'/v1/webhooks/subscriptions'>;
export type EventQuery = Query<'/v1/events'>;
export type DeliveryQuery = Query<'/v1/deliveries'>;
export type DocumentQuery = Query<'/v1/documents'>;
export type EventType = NonNullable<SubscriptionQuery['event_type']>;
/** A request body as our OpenAPI document has it. */
type JsonBody<P extends keyof paths, M extends 'post' | 'patch'> = paths[P][M] extends {
  requestBody?: { content: { 'application/json': infer B } };
}
  ? B
  : never;
export type DocumentEventType = NonNullable<
  NonNullable<JsonBody<'/v1/webhooks/subscriptions/{id}/test', 'post'>>['event_type']
>;
export type DeliveryStatus = NonNullable<DeliveryQuery['status']>;
export type AuthType = Callback['authType'];
export type DocumentStatus = NonNullable<DocumentQuery['status']>;

/** The document events: what a platform publishes (or countersign's documents make), and what a test event may be. */
export const EVENT_TYPES: DocumentEventType[] = [
  'document.sent',
  'document.signed',
  'document.declined',
  'document.completed',
];
/** Events countersign makes about its own deliveries, for subscriptions that take them. */
export const OPERATIONAL_EVENT_TYPES: EventType[] = [
  'subscription.disabled',
  'delivery.failed',
  'endpoint.circuit_opened',
  'endpoint.circuit_closed',
];
export const isDocumentEvent = (t: string): boolean => (EVENT_TYPES as string[]).includes(t);
export const DELIVERY_STATUSES: DeliveryStatus[] = [
  'pending',
  'sending',
  'delivered',
  'failed',
  'held',
  'cancelled',
  'waiting',
  'postponed',
];
export const DOCUMENT_STATUSES: DocumentStatus[] = ['draft', 'sent', 'completed', 'declined'];

export const queries = {
  me: async (token?: string) =>
    unwrap(await api.GET('/v1/me', token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })),
  overview: async () => unwrap(await api.GET('/v1/stats/overview', { params: { query: { hours: 24 } } })),
  attemptsPerMinute: async (minutes: number) =>
    unwrap(await api.GET('/v1/stats/attempts', { params: { query: { minutes } } })),

  subscriptions: async (query: SubscriptionQuery) =>
    unwrap(await api.GET('/v1/webhooks/subscriptions', { params: { query } })),
  subscription: async (id: string): Promise<Subscription> => {
    const found = unwrap(await api.GET('/v1/webhooks/subscriptions/{id}', { params: { path: { id } } }));
    const sub = found.subscriptions[0];
    if (!sub) throw new Error('the API answered without the subscription');
    return sub;
  },
  createSubscription: async (body: JsonBody<'/v1/webhooks/subscriptions', 'post'>) =>
    unwrap(await api.POST('/v1/webhooks/subscriptions', { body })),
  updateSubscription: async (id: string, body: JsonBody<'/v1/webhooks/subscriptions/{id}', 'patch'>) =>
    unwrap(await api.PATCH('/v1/webhooks/subscriptions/{id}', { params: { path: { id } }, body })),
  deleteSubscription: async (id: string) =>
    unwrap(await api.DELETE('/v1/webhooks/subscriptions/{id}', { params: { path: { id } } })),
  rotateSecret: async (id: string) =>
    unwrap(await api.POST('/v1/webhooks/subscriptions/{id}/rotate-secret', { params: { path: { id } }, body: {} })),
  sendTest: async (id: string, eventType: DocumentEventType) =>
    unwrap(
      await api.POST('/v1/webhooks/subscriptions/{id}/test', {
        params: { path: { id } },
        body: { event_type: eventType },
      }),
    ),
  probeCircuit: async (id: string) =>
    unwrap(await api.POST('/v1/webhooks/subscriptions/{id}/circuit/probe', { params: { path: { id } } })),
  replay: async (id: string, since: string, until: string) =>
    unwrap(
      await api.POST('/v1/webhooks/subscriptions/{id}/replay', {
        params: { path: { id } },
        body: { since, until },
      }),
    ),

  callback: async () => unwrap(await api.GET('/api/sign/v1/callback')),
  registerCallback: async (body: {
    callbackUrl: string;
    authType: AuthType;
    username?: string;
    password?: string;
    bearerToken?: string;
  }) => unwrap(await api.PUT('/api/sign/v1/callback/register', { body })),
  rotateCallbackSecret: async () => unwrap(await api.POST('/api/sign/v1/callback/rotate-secret', { body: {} })),
  probeCallbackCircuit: async () => unwrap(await api.POST('/api/sign/v1/callback/circuit/probe')),

  events: async (query: EventQuery) => unwrap(await api.GET('/v1/events', { params: { query } })),
  event: async (id: string) => unwrap(await api.GET('/v1/events/{id}', { params: { path: { id } } })),

  deliveries: async (query: DeliveryQuery) => unwrap(await api.GET('/v1/deliveries', { params: { query } })),
  delivery: async (id: string) => unwrap(await api.GET('/v1/deliveries/{id}', { params: { path: { id } } })),
  redeliver: async (id: string) =>
    unwrap(await api.POST('/v1/deliveries/{id}/redeliver', { params: { path: { id } } })),

  documents: async (query: DocumentQuery) => unwrap(await api.GET('/v1/documents', { params: { query } })),
  document: async (id: string) => unwrap(await api.GET('/v1/documents/{id}', { params: { path: { id } } })),
  verifyAuditChain: async (id: string) =>
    unwrap(await api.GET('/v1/documents/{id}/audit/verify', { params: { path: { id } } })),
};
