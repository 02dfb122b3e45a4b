// The HTTP edge of delivery: one undici Agent (a keep-alive pool per origin), no redirects, connect
// and total timeouts, and a bounded read of the answer: at most 64 KiB is read, 4 KiB is kept.
// Every connection goes through the SSRF guard: literal IP hosts are vetted before connecting, host
// names through the guarded lookup, which pins the socket to the addresses it vetted.
import { rootCertificates } from 'node:tls';
import { Agent, buildConnector, request } from 'undici';
import type { TargetPolicy } from '../domain/target-url.js';
import { createGuardedLookup, type Resolver, systemResolver, vetLiteralHost } from './guarded-lookup.js';

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
  excerpt: string;
}

export class Sender {
  private readonly agent: Agent;
  private readonly requestTimeoutMs: number;

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
        const refused = vetLiteralHost(target.hostname, policy);
        if (refused) callback(refused, null);
        else connect(target, callback);
      },
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
    });
  }

  /** POSTs `body`; resolves with the answer, rejects on transport errors and timeouts. */
  async post(url: string, headers: Record<string, string>, body: string): Promise<SendAnswer> {
    const response = await request(url, {
      method: 'POST',
      headers,
      body,
      dispatcher: this.agent,
      signal: AbortSignal.timeout(this.requestTimeoutMs),
    });
    const retryAfter = response.headers['retry-after'];
    const excerpt = await readExcerpt(response.body);
    return {
      statusCode: response.statusCode,
      retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
      excerpt,
    };
  }

  async close(): Promise<void> {
    await this.agent.destroy();
  }
}

async function readExcerpt(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let readBytes = 0;
  try {
    for await (const chunk of body) {
      readBytes += chunk.length;
      if (keptBytes < EXCERPT_LIMIT) {
        const slice = chunk.subarray(0, EXCERPT_LIMIT - keptBytes);
        kept.push(slice);
        keptBytes += slice.length;
      }
      if (readBytes >= READ_LIMIT) {
        body.destroy();
        break;
      }
    }
  } catch {
    // A body cut short still leaves us the status code; the excerpt is what arrived.
  }
  return Buffer.concat(kept).toString('utf8');
}
