// The API calls the end-to-end suites make, and small waits and readers around a receiver's requests.
import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import type { ReceivedRequest } from './receiver.js';
import type { TestService } from './service.js';

export const SIGNED_DATA = {
  document_id: 'doc_88291',
  signer_email: 'client@example.com',
  audit_url: 'https://congasign.com/audit/88291',
};

export interface AttemptView {
  number: number;
  trigger: 'scheduled' | 'manual';
  started_at: string;
  duration_ms: number;
  request_url?: string | null;
  request_headers?: Record<string, string> | null;
  status_code: number | null;
  error: string | null;
  response_headers?: Record<string, string> | null;
  response_excerpt: string | null;
}

export interface DeliveryView {
  id: string;
  event_id: string;
  subscription_id: string | null;
  target: 'subscription' | 'callback' | 'listen';
  target_url?: string | null;
  /** The last attempt's request in full (GET one delivery). */
  request?: { method: string; url: string; headers: Record<string, string>; body: string } | null;
  status: string;
  attempt_count: number;
  delivered_at: string | null;
  last_attempt?: AttemptView | null;
  attempts?: AttemptView[];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a value (not undefined), or fails naming `what`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export function headerOf(request: ReceivedRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function payloadOf(request: ReceivedRequest): Record<string, unknown> {
  return JSON.parse(request.body) as Record<string, unknown>;
}

/** The API calls the cases make, on one service. */
export function apiOf(service: TestService) {
  const api = {
    async subscribe(targetUrl: string, eventType = 'document.signed', secretToken?: string) {
      const res = await service.request({
        method: 'POST',
        url: '/v1/webhooks/subscriptions',
        payload: {
          target_url: targetUrl,
          event_type: eventType,
          ...(secretToken === undefined ? {} : { secret_token: secretToken }),
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const sub = res.json().subscriptions[0] as { id: string; signing_secret: string };
      return { id: sub.id, secret: sub.signing_secret };
    },
    publish(
      event = 'document.signed',
      data: Record<string, unknown> = SIGNED_DATA,
      extra: { timestamp?: string; headers?: Record<string, string> } = {},
    ): Promise<LightMyRequestResponse> {
      return service.request({
        method: 'POST',
        url: '/v1/events',
        headers: extra.headers,
        payload: { event, data, ...(extra.timestamp === undefined ? {} : { timestamp: extra.timestamp }) },
      });
    },
    async published(event = 'document.signed', data: Record<string, unknown> = SIGNED_DATA) {
      const res = await api.publish(event, data);
      expect(res.statusCode, res.body).toBe(202);
      return res.json() as { id: string; event: string; timestamp: string; deliveries: number };
    },
    async deliveriesOf(query: string): Promise<DeliveryView[]> {
      const res = await service.request({ method: 'GET', url: `/v1/deliveries?${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().deliveries as DeliveryView[];
    },
    /** The one delivery of an event, with every attempt. */
    async deliveryOfEvent(eventId: string): Promise<DeliveryView> {
      const list = await api.deliveriesOf(`event_id=${eventId}`);
      expect(list).toHaveLength(1);
      return api.delivery((list[0] as DeliveryView).id);
    },
    async delivery(id: string): Promise<DeliveryView> {
      const res = await service.request({ method: 'GET', url: `/v1/deliveries/${id}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as DeliveryView;
    },
    /** Waits until the event's one delivery has `status` (and, optionally, `attempts` attempts). */
    settled(eventId: string, status: string, attempts?: number): Promise<DeliveryView> {
      return eventually(`the delivery of ${eventId} to be ${status}`, async () => {
        const list = await api.deliveriesOf(`event_id=${eventId}`);
        const first = list[0];
        if (list.length !== 1 || !first || first.status !== status) return undefined;
        const detail = await api.delivery(first.id);
        if (attempts !== undefined && detail.attempts?.length !== attempts) return undefined;
        return detail;
      });
    },
    /**
     * The positive signal a "nothing more arrived" check waits for, instead of a sleep: no delivery
     * of the account is left to send (none pending, sending, waiting or postponed) and the
     * dispatcher has nothing in flight. What a receiver has not got by then, it will not get.
     */
    async drained(): Promise<void> {
      await eventually('no delivery left to send', async () => {
        for (const status of ['pending', 'sending', 'waiting', 'postponed']) {
          if ((await api.deliveriesOf(`status=${status}&limit=1`)).length > 0) return undefined;
        }
        return true;
      });
      await service.dispatcher?.idle();
    },
    async subscription(id: string) {
      const res = await service.request({ method: 'GET', url: `/v1/webhooks/subscriptions/${id}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().subscriptions[0] as { id: string; status: string; disabled_reason: string | null };
    },
    async patch(id: string, body: Record<string, unknown>) {
      const res = await service.request({ method: 'PATCH', url: `/v1/webhooks/subscriptions/${id}`, payload: body });
      expect(res.statusCode, res.body).toBe(200);
    },
    async registerCallback(body: Record<string, unknown>) {
      const res = await service.request({ method: 'PUT', url: '/api/sign/v1/callback/register', payload: body });
      expect(res.statusCode, res.body).toBe(200);
    },
  };
  return api;
}
