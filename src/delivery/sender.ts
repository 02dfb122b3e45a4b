// The HTTP edge of delivery: one undici Agent (a keep-alive pool per origin), no redirects, connect
// and total timeouts, and a bounded read of the answer: at most 64 KiB is read, 4 KiB is kept.
// Every connection goes through the SSRF guard: literal IP hosts are vetted before connecting, host
// names through the guarded lookup, which pins the socket to the addresses it vetted.
import { rootCertificates } from 'node:tls';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import type { TargetPolicy } from '../domain/target-url.js';
import { createGuardedLookup, type Resolver, systemResolver, vetLiteralHost, vetPort } from './guarded-lookup.js';
import { SlotList, type Slotted } from './slot-list.js';

export const READ_LIMIT = 64 * 1024;
export const EXCERPT_LIMIT = 4 * 1024;

export interface SenderOptions {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  perOriginConnections: number;
  /** Insecure mode and the allow-list, as for registration. */
  targetPolicy: TargetPolicy;
  /** How host names are resolved (the system resolver unless a test plays DNS). */
  resolve?: Resolver;
  /** Extra PEM CA certificates trusted besides Node's roots (internal receivers, tests). */
  trustedCa?: string[];
}

export interface SendAnswer {
  statusCode: number;
  retryAfter: string | undefined;
  /** The answer's headers as undici hands them over (lower-case names). */
  headers: Record<string, string | string[] | undefined>;
  excerpt: string;
}

const NO_HEADERS: SendAnswer['headers'] = {};

/** A send still running at its deadline is aborted with this; the attempt log says "timeout". */
export class SendTimeoutError extends Error {
  constructor(ms: number) {
    super(`no complete answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

interface InFlight extends Slotted {
  deadline: number;
  controller: Dispatcher.DispatchController | undefined;
  expire(): void;
}

const SWEEP_MS = 100;

export class Sender {
  private readonly agent: Agent;
  private readonly requestTimeoutMs: number;
  /** Sends under way, swept for their total deadline by one timer rather than a timer each. */
  private readonly inFlight = new SlotList<InFlight>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly targets = new Map<string, { origin: string; path: string }>();

  constructor(options: SenderOptions) {
    this.requestTimeoutMs = options.requestTimeoutMs;
    const policy = options.targetPolicy;
    const connect = buildConnector({
      timeout: options.connectTimeoutMs,
      lookup: createGuardedLookup(policy, options.resolve ?? systemResolver),
      ...(options.trustedCa?.length ? { ca: [...rootCertificates, ...options.trustedCa] } : {}),
    });
    this.agent = new Agent({
      connections: options.perOriginConnections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      // Node connects to a literal IP without calling `lookup`, so literals are vetted here.
      connect: (target, callback) => {
        const refused = vetPort(target, policy) ?? vetLiteralHost(target.hostname, policy);
        if (refused) callback(refused, null);
        else connect(target, callback);
      },
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
    });
    this.sweeper = setInterval(() => {
      const now = Date.now();
      this.inFlight.forEach((send) => {
        if (send.deadline <= now) send.expire();
      });
    }, SWEEP_MS);
    this.sweeper.unref();
  }

  /**
   * POSTs `body`; resolves with the answer, rejects on transport errors and timeouts. Uses undici's
   * dispatch handler directly: no response stream, no per-request timer, and the body is consumed
   * chunk by chunk up to the read limit.
   */
  post(url: string, headers: Record<string, string>, body: string): Promise<SendAnswer> {
    const { origin, path } = this.target(url);
    return new Promise<SendAnswer>((resolve, reject) => {
      let statusCode = 0;
      let retryAfter: string | undefined;
      let answerHeaders = NO_HEADERS;
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let readBytes = 0;
      let settled = false;
      const answer = (): SendAnswer => ({
        statusCode,
        retryAfter,
        headers: answerHeaders,
        excerpt: Buffer.concat(kept).toString('utf8'),
      });
      const settle = (err: Error | undefined) => {
        if (settled) return;
        settled = true;
        this.inFlight.delete(send);
        if (err && statusCode === 0) reject(err);
        // An answer cut short still has its status code; the excerpt is what arrived.
        else resolve(answer());
      };
      const send: InFlight = {
        slot: -1,
        deadline: Date.now() + this.requestTimeoutMs,
        controller: undefined,
        expire: () => {
          const timeout = new SendTimeoutError(this.requestTimeoutMs);
          statusCode = 0;
          settle(timeout);
          if (send.controller && !send.controller.aborted) send.controller.abort(timeout);
        },
      };
      this.inFlight.add(send);
      this.agent.dispatch(
        { origin, path, method: 'POST', headers, body },
        {
          onRequestStart(controller) {
            send.controller = controller;
            if (settled) controller.abort(new SendTimeoutError(0));
          },
          onResponseStart(_controller, code, responseHeaders) {
            statusCode = code;
            answerHeaders = responseHeaders;
            const value = responseHeaders['retry-after'];
            retryAfter = Array.isArray(value) ? value[0] : value;
          },
          onResponseData(controller, chunk) {
            readBytes += chunk.length;
            if (keptBytes < EXCERPT_LIMIT) {
              const slice = chunk.subarray(0, EXCERPT_LIMIT - keptBytes);
              kept.push(slice);
              keptBytes += slice.length;
            }
            if (readBytes >= READ_LIMIT) {
              settle(undefined);
              controller.abort(new Error('response body over the read limit'));
            }
          },
          onResponseEnd() {
            settle(undefined);
          },
          onResponseError(_controller, err) {
            settle(err);
          },
        },
      );
    });
  }

  private target(url: string): { origin: string; path: string } {
    let target = this.targets.get(url);
    if (!target) {
      const parsed = new URL(url);
      target = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
      if (this.targets.size >= 10_000) this.targets.clear();
      this.targets.set(url, target);
    }
    return target;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.agent.destroy();
  }
}
