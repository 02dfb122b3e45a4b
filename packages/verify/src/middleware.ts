// Receiving webhooks in a framework: Express (with express.raw), Fastify (the raw body) and plain
// node:http. Each answers a webhook that fails verification with 401 and a JSON error, as the
// seed asks of receivers, and hands the verified event on. They rely on nothing but the shapes of
// the frameworks' request and reply objects, so the package needs none of them installed.
import {
  type VerifyOptions,
  verifyWebhook,
  type WebhookEvent,
  type WebhookHeaders,
  WebhookVerificationError,
} from './verify.js';

export type ReceiverOptions = Omit<VerifyOptions, 'payload' | 'headers'>;

/** The 401 body a refused webhook gets. */
export function refusalBody(err: WebhookVerificationError): { error: { code: string; message: string } } {
  return { error: { code: err.code, message: err.message } };
}

function isRefusal(err: unknown): err is WebhookVerificationError {
  return err instanceof WebhookVerificationError;
}

// ---- Express ---------------------------------------------------------------------------------

interface ExpressRequest {
  body?: unknown;
  headers: WebhookHeaders;
  webhook?: WebhookEvent;
}
interface ExpressResponse {
  status(code: number): ExpressResponse;
  json(body: unknown): unknown;
}

/**
 * Express middleware. Mount it after `express.raw({ type: 'application/json' })`, so that the body
 * is the bytes that were signed; the verified event is then `req.webhook`.
 */
export function expressWebhook(options: ReceiverOptions) {
  return (req: ExpressRequest, res: ExpressResponse, next: (err?: unknown) => void): void => {
    const body = req.body;
    if (!(body instanceof Uint8Array) && typeof body !== 'string') {
      next(
        new TypeError(
          'expressWebhook needs the raw body: mount express.raw({ type: "application/json" }) before it on this route',
        ),
      );
      return;
    }
    verifyWebhook({ ...options, payload: body, headers: req.headers }).then(
      (event) => {
        req.webhook = event;
        next();
      },
      (err: unknown) => {
        if (isRefusal(err)) res.status(401).json(refusalBody(err));
        else next(err);
      },
    );
  };
}

// ---- Fastify ---------------------------------------------------------------------------------

interface FastifyRequestLike {
  body?: unknown;
  headers: WebhookHeaders;
  webhook?: WebhookEvent;
}
interface FastifyReplyLike {
  code(status: number): FastifyReplyLike;
  send(payload?: unknown): unknown;
}
interface FastifyScope {
  addContentTypeParser(
    type: string,
    options: { parseAs: 'buffer' },
    parser: (request: unknown, body: Uint8Array, done: (err: Error | null, body?: unknown) => void) => void,
  ): void;
  addHook(
    name: 'preHandler',
    hook: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<unknown>,
  ): unknown;
}

/**
 * Makes a Fastify scope a webhook receiver: its JSON bodies stay raw (the bytes that were signed)
 * and every route in it verifies before its handler runs; the event is `request.webhook`. Call it
 * on an encapsulated scope, so the rest of the app keeps Fastify's JSON parser:
 *
 *   app.register(async (hooks) => {
 *     fastifyWebhook(hooks, { secret });
 *     hooks.post('/webhooks', async (request) => { … request.webhook … });
 *   });
 */
export function fastifyWebhook(scope: FastifyScope, options: ReceiverOptions): void {
  scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  scope.addHook('preHandler', async (request, reply) => {
    const body = request.body;
    try {
      request.webhook = await verifyWebhook({
        ...options,
        payload: body instanceof Uint8Array || typeof body === 'string' ? body : '',
        headers: request.headers,
      });
    } catch (err) {
      if (!isRefusal(err)) throw err;
      return reply.code(401).send(refusalBody(err));
    }
    return undefined;
  });
}

// ---- node:http ---------------------------------------------------------------------------------

interface NodeRequest extends AsyncIterable<Uint8Array | string> {
  headers: WebhookHeaders;
}
interface NodeResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body?: string): unknown;
}

/** Reads a node:http request's body and verifies it. */
export async function verifyNodeRequest(req: NodeRequest, options: ReceiverOptions): Promise<WebhookEvent> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of req) {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
    chunks.push(bytes);
    length += bytes.length;
  }
  const body = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.length;
  }
  return verifyWebhook({ ...options, payload: body, headers: req.headers });
}

/**
 * A node:http request listener: verifies, answers a refused webhook with 401, and calls `handle`
 * with the event otherwise (which answers the request itself).
 */
export function nodeWebhook<Req extends NodeRequest, Res extends NodeResponse>(
  options: ReceiverOptions,
  handle: (event: WebhookEvent, req: Req, res: Res) => unknown,
) {
  return (req: Req, res: Res): void => {
    verifyNodeRequest(req, options).then(
      (event) => handle(event, req, res),
      (err: unknown) => {
        res.statusCode = isRefusal(err) ? 401 : 500;
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify(
            isRefusal(err) ? refusalBody(err) : { error: { code: 'internal_error', message: 'verification failed' } },
          ),
        );
      },
    );
  };
}
