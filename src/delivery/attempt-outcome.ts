// What one attempt came to, as the delivery log records it: the receiver's answer (or why there was
// none) classified, and the next attempt scheduled or the delivery failed for good. The dispatcher
// (answers over HTTP) and the listen hub (answers reported by `countersign listen`) share it, so a
// listen session's delivery is retried exactly as a subscription's would be.
import { responseHeadersJson, storableText } from '../domain/attempt-record.js';
import { classifyStatus, honoursRetryAfter } from '../domain/classify.js';
import { nextRetryDelay, parseRetryAfter } from '../domain/retry-policy.js';
import type { AttemptOutcome, AttemptResult, ClaimedDelivery } from '../store/store.js';
import type { WebhookRequest, WebhookSigner } from './webhook-request.js';

export interface ReceiverAnswer {
  statusCode: number;
  /** The first bytes of the answer's body ('' when none). */
  excerpt: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface AttemptFacts {
  startedAt: number;
  finishedAt: number;
  /** Where the attempt went, and its headers as the log keeps them (null when nothing was sent). */
  requestUrl: string | null;
  loggedHeaders: string | null;
  /** The answer, or the reason there was none. */
  answer: ReceiverAnswer | { error: string };
}

export function attemptResult(
  d: ClaimedDelivery,
  retrySchedule: readonly number[],
  facts: AttemptFacts,
): AttemptResult {
  let statusCode: number | null = null;
  let error: string | null = null;
  let excerpt: string | null = null;
  let responseHeaders: string | null = null;
  let retryAfterMs: number | undefined;
  let outcome: AttemptOutcome;
  const answer = facts.answer;
  if ('error' in answer) {
    error = storableText(answer.error);
    outcome = 'retry';
  } else {
    statusCode = answer.statusCode;
    excerpt = answer.excerpt === '' ? null : storableText(answer.excerpt);
    responseHeaders = responseHeadersJson(answer.headers);
    const kind = classifyStatus(answer.statusCode);
    if (kind === 'delivered') outcome = 'delivered';
    else if (kind === 'gone') outcome = d.target.kind === 'subscription' ? 'gone' : 'failed';
    else {
      outcome = 'retry';
      if (answer.statusCode >= 300 && answer.statusCode < 400) error = 'redirects are not followed';
      if (honoursRetryAfter(answer.statusCode)) {
        const value = answer.headers['retry-after'];
        retryAfterMs = parseRetryAfter(Array.isArray(value) ? value[0] : value, facts.finishedAt);
      }
    }
  }
  let nextAttemptAt: number | undefined;
  if (outcome === 'retry') {
    const delay = d.oneOff ? undefined : nextRetryDelay(retrySchedule, d.attemptsBefore + 1, retryAfterMs);
    if (delay === undefined) outcome = 'failed';
    else nextAttemptAt = facts.finishedAt + delay;
  }
  return {
    deliveryId: d.id,
    accountId: d.accountId,
    subscriptionId: d.subscriptionId,
    attempt: d.attempt,
    trigger: d.trigger,
    startedAt: facts.startedAt,
    durationMs: facts.finishedAt - facts.startedAt,
    statusCode,
    error,
    responseExcerpt: excerpt,
    requestUrl: facts.requestUrl,
    requestHeaders: facts.loggedHeaders,
    responseHeaders,
    outcome,
    nextAttemptAt,
  };
}

/**
 * The signed request for an attempt starting at `startedAt`, or, when it cannot be made (a secret
 * that does not open), the failed attempt that says why: never a delivery left without an attempt.
 */
export function prepareRequest(
  signer: WebhookSigner,
  d: ClaimedDelivery,
  startedAt: number,
  retrySchedule: readonly number[],
  requestUrl: string | null,
): { request: WebhookRequest } | { failed: AttemptResult } {
  try {
    return { request: signer.build(d, Math.floor(startedAt / 1000)) };
  } catch (err) {
    const error = `the request could not be prepared: ${(err as Error)?.message ?? String(err)}`.slice(0, 500);
    return {
      failed: attemptResult(d, retrySchedule, {
        startedAt,
        finishedAt: Date.now(),
        requestUrl,
        loggedHeaders: null,
        answer: { error },
      }),
    };
  }
}
