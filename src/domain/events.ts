// The event catalogue and the payload a receiver gets. Pure: validation and serialisation only.
import { invalidField } from '../errors.js';
import { toIsoSeconds } from './time.js';

/**
 * The document events: the seed's three, and document.completed (issue 18: the last signer
 * signed). Publishable through the API, and sent to the account callback.
 */
export const EVENT_TYPES = ['document.sent', 'document.signed', 'document.declined', 'document.completed'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

/**
 * Events countersign makes about its own deliveries, for the account's subscriptions that take
 * them: never published through the API, never sent to the account callback (which keeps the
 * seed's events only).
 */
export const OPERATIONAL_EVENT_TYPES = [
  'subscription.disabled',
  'delivery.failed',
  'endpoint.circuit_opened',
  'endpoint.circuit_closed',
] as const;
export type OperationalEventType = (typeof OPERATIONAL_EVENT_TYPES)[number];

/** What a subscription may take: the seed's document events and the operational ones. */
export const SUBSCRIBABLE_EVENT_TYPES = [...EVENT_TYPES, ...OPERATIONAL_EVENT_TYPES] as const;
export type SubscribableEventType = (typeof SUBSCRIBABLE_EVENT_TYPES)[number];

export function isSubscribableEventType(value: string): value is SubscribableEventType {
  return (SUBSCRIBABLE_EVENT_TYPES as readonly string[]).includes(value);
}

export function isOperationalEventType(value: string): value is OperationalEventType {
  return (OPERATIONAL_EVENT_TYPES as readonly string[]).includes(value);
}

/** `subscription.disabled`'s data. A disabled account callback is never reported: it cannot be disabled. */
export interface SubscriptionDisabledData {
  subscription_id: string;
  target_url: string;
  reason: string;
}

/** `delivery.failed`'s data: subscription_id is null for a delivery to the account callback. */
export interface DeliveryFailedData {
  subscription_id: string | null;
  target_url: string;
  reason: string;
  delivery_id: string;
  event_id: string;
  event_type: string;
  attempts: number;
}

/**
 * `endpoint.circuit_opened` and `endpoint.circuit_closed`'s data: an endpoint (a subscription, or
 * the account callback when subscription_id is null) whose circuit breaker opened or closed.
 */
export interface CircuitEventData {
  subscription_id: string | null;
  target_url: string;
  state: 'closed' | 'open' | 'half_open';
  /** The last fault: what the delivery log says of it (null once closed with no fault since). */
  reason: string | null;
  consecutive_failures: number;
  opened_at: string | null;
  /** Open: when the probe goes. */
  next_probe_at: string | null;
}

/** A subscription's event types as stored: space-separated, in the order given, each once. */
export function joinEventTypes(types: readonly string[]): string {
  return [...new Set(types)].join(' ');
}

export function splitEventTypes(stored: string): string[] {
  return stored === '' ? [] : stored.split(' ');
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * Checks `data` for an event type and returns it unchanged. The three document events carry
 * document_id, signer_email and audit_url; further fields are allowed and delivered as given, so a
 * platform can add its own context (a decline reason, a document name) without a schema change.
 */
export function validateEventData(type: EventType, data: Record<string, unknown>): Record<string, unknown> {
  requireString(data, 'document_id', 256);
  const email = requireString(data, 'signer_email', 320);
  if (!EMAIL.test(email)) throw invalidField('data.signer_email', 'must be an email address');
  const auditUrl = requireString(data, 'audit_url', 2048);
  let parsed: URL | undefined;
  try {
    parsed = new URL(auditUrl);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) {
    throw invalidField('data.audit_url', 'must be an absolute http(s) URL');
  }
  if (type === 'document.declined' && data.reason !== undefined && typeof data.reason !== 'string') {
    throw invalidField('data.reason', 'must be a string');
  }
  return data;
}

function requireString(data: Record<string, unknown>, key: string, maxLength: number): string {
  const value = data[key];
  if (value === undefined) throw invalidField(`data.${key}`, 'is required');
  if (typeof value !== 'string' || value.length === 0) throw invalidField(`data.${key}`, 'must be a non-empty string');
  if (value.length > maxLength) throw invalidField(`data.${key}`, `must be at most ${maxLength} characters`);
  return value;
}

export interface PayloadSource {
  id: string;
  type: string;
  occurredAt: number;
  /** The event's data exactly as stored (JSON text), spliced in without a re-parse. */
  dataJson: string;
  /** A test event (POST …/test): the payload says so with `"test": true`. */
  test: boolean;
  /** Made by the documents lifecycle: the payload says so with `"source": "lifecycle"`. */
  source?: 'lifecycle';
}

/**
 * The seed's payload `{"event","timestamp","data"}`, then `id`, then `"test": true` on a test event,
 * then `secret_token` when the subscription has one (the seed's own verification scheme). Built by
 * concatenation so the hot path never re-serialises `data`.
 */
export function buildPayload(event: PayloadSource, secretToken: string | undefined): string {
  const head = `{"event":${JSON.stringify(event.type)},"timestamp":"${toIsoSeconds(event.occurredAt)}","data":${event.dataJson},"id":"${event.id}"${event.source === 'lifecycle' ? ',"source":"lifecycle"' : ''}${event.test ? ',"test":true' : ''}`;
  return secretToken === undefined ? `${head}}` : `${head},"secret_token":${JSON.stringify(secretToken)}}`;
}
