// Refusals at the door, decided by each route's own schema: a body sent to a route that takes
// none, a query parameter on a route that reads none, a Content-Encoding the server does not
// decode. Also owns how bodies are read: an empty body is no body (whatever its Content-Type) on a
// route whose body is absent or optional, and JSON that parses but carries `__proto__` is refused
// for what it is, not called invalid. Everything per route is worked out once, when it is added.
import { Readable } from 'node:stream';
import { OptionalKind } from '@sinclair/typebox';
import {
  errorCodes,
  type FastifyInstance,
  type FastifyReply,
  type FastifySchema,
  type FastifySchemaCompiler,
  type onRequestHookHandler,
  type preParsingHookHandler,
} from 'fastify';
import { CountersignError, invalidField } from '../errors.js';
import { nestsDeeperThan } from './json-depth.js';
import { MAX_JSON_DEPTH, tooDeep } from './limits.js';
import { SMALL_BODY_LIMIT } from './schemas.js';

/** Whether a route reads a request body: per its schema's `body`, TypeBox's Optional marking it optional. */
type BodyStance = 'none' | 'optional' | 'required';

type PreParsingDone = Parameters<preParsingHookHandler>[3];

export function registerRequestGuards(app: FastifyInstance): void {
  // Runs for every route added after this point, HEAD twins of GET routes included. Each route gets
  // only the hooks its schema calls for, after the instance's own (so after authentication). The
  // header checks join the onRequest hooks every API route runs anyway: a preParsing hook on the
  // publish route would cost Fastify a hook runner per request.
  app.addHook('onRoute', function guardRoute(this: FastifyInstance, route) {
    const stance = bodyStance(route.schema);
    const headerGuard = route.schema?.querystring === undefined ? refuseEncodingAndQuery : refuseEncoding;
    route.onRequest = route.onRequest === undefined ? [headerGuard] : [...[route.onRequest].flat(), headerGuard];
    if (stance === 'none') {
      route.preParsing = route.preParsing === undefined ? [refuseBody] : [...[route.preParsing].flat(), refuseBody];
    }
    if (stance === 'optional') route.validatorCompiler = acceptingAbsentBody(this, route.validatorCompiler);
    // A route that takes a body reads no more than it needs unless it says otherwise.
    if (stance !== 'none' && route.bodyLimit === undefined) route.bodyLimit = SMALL_BODY_LIMIT;
  });

  const parseJson = app.getDefaultJsonParser(
    app.initialConfig.onProtoPoisoning ?? 'error',
    app.initialConfig.onConstructorPoisoning ?? 'error',
  );
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    // Only an empty body pays for reading the route's options (a getter that builds an object).
    if (text.length === 0 && bodyStance(request.routeOptions.schema) !== 'required') {
      done(null, undefined);
      return;
    }
    // Before parsing: refusing a pathologically deep body after JSON.parse has built it would
    // already have cost the parse.
    if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
      done(tooDeep());
      return;
    }
    parseJson(request, text, (err, value) => {
      if (err) done(explainRefusedJson(err, text));
      else done(null, value);
    });
  });

  // Any other media type. The stream is not read: an empty body on a route that does not need one
  // is no body; anything else is a 415 (the error handler words it).
  app.addContentTypeParser('*', (request, _payload, done) => {
    const stance = bodyStance(request.routeOptions.schema);
    // A route that takes no body only gets here with an empty one: refuseBody refused the rest.
    const empty = stance === 'none' || (stance === 'optional' && request.headers['content-length'] === '0');
    if (empty) done(null, undefined);
    else done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE());
  });
}

function bodyStance(schema: FastifySchema | undefined): BodyStance {
  const body = schema?.body as { [OptionalKind]?: unknown } | undefined;
  if (body === undefined) return 'none';
  return body[OptionalKind] === 'Optional' ? 'optional' : 'required';
}

/** Callback hooks, like every hook on the publish path: nothing here waits. */
const refuseEncoding: onRequestHookHandler = (request, reply, done) => {
  done(encodingRefusal(request.headers['content-encoding'], reply));
};

/** For routes without a querystring schema: any query parameter is one they would ignore. */
const refuseEncodingAndQuery: onRequestHookHandler = (request, reply, done) => {
  const name = firstKey(request.query);
  done(
    encodingRefusal(request.headers['content-encoding'], reply) ??
      (name === undefined ? undefined : invalidField(name, 'is not a known query parameter; this route takes none')),
  );
};

/** A Content-Encoding other than identity: the server decodes none, so the body would be gibberish. */
function encodingRefusal(encoding: string | undefined, reply: FastifyReply): CountersignError | undefined {
  const unsupported = encoding === undefined || encoding === 'identity' ? undefined : unsupportedEncoding(encoding);
  if (unsupported === undefined) return undefined;
  reply.header('accept-encoding', 'identity');
  return new CountersignError(
    'unsupported_media_type',
    `Content-Encoding "${unsupported}" is not supported; send the request body uncompressed`,
  );
}

/**
 * For routes without a body schema, before a byte of the body is read. A declared length refuses at
 * once; a chunked body may still turn out empty, so its first byte decides.
 */
const refuseBody: preParsingHookHandler = (request, _reply, payload, done) => {
  const length = request.headers['content-length'];
  if (length !== undefined && Number(length) !== 0) done(noBodyTaken());
  else if (request.headers['transfer-encoding'] !== undefined) refuseStreamedBody(payload, done);
  else done(null, payload);
};

/** The first coding of a Content-Encoding list other than identity, or undefined when all are identity. */
function unsupportedEncoding(header: string): string | undefined {
  for (const coding of header.split(',')) {
    const name = coding.trim().toLowerCase();
    if (name !== '' && name !== 'identity') return name;
  }
  return undefined;
}

function firstKey(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  for (const key in value) return key;
  return undefined;
}

function noBodyTaken(): CountersignError {
  return invalidField('body', 'this route takes no request body');
}

/** The first byte refuses; an end without one passes on an empty stream, since this one is spent. */
function refuseStreamedBody(payload: NodeJS.ReadableStream, done: PreParsingDone): void {
  const finish = (err: Error | null) => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', finish);
    if (err) done(err);
    else done(null, Readable.from([]));
  };
  const onData = (chunk: Buffer | string) => {
    if (chunk.length > 0) finish(noBodyTaken());
  };
  const onEnd = () => finish(null);
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', finish);
}

/**
 * The instance's validator compiler, except that an absent body passes the body schema: Fastify
 * validates a missing body as `null`, which an optional object schema would refuse. The base
 * compiler is looked up when the route is compiled (at ready), once every setting is in place.
 */
function acceptingAbsentBody(
  instance: FastifyInstance,
  own: FastifySchemaCompiler<FastifySchema> | undefined,
): FastifySchemaCompiler<FastifySchema> {
  return (definition) => {
    const compile = own ?? instance.validatorCompiler;
    if (!compile) throw new Error('an optional request body needs a validator compiler set before its route');
    const validate = compile(definition);
    if (definition.httpPart !== 'body') return validate;
    type Validation = ReturnType<typeof validate>;
    // Fastify hands Ajv's validators (those with a schemaEnv) a second argument, where the data
    // sits; the wrapper passes it on and shows the wrapped validator's errors as its own.
    const call = validate as (data: unknown, where?: unknown) => Validation;
    const validateBody = ((data: unknown, where?: unknown): Validation =>
      data === null || data === undefined ? true : call(data, where)) as typeof validate & { schemaEnv?: unknown };
    Object.defineProperty(validateBody, 'errors', { get: () => validate.errors });
    validateBody.schemaEnv = (validate as { schemaEnv?: unknown }).schemaEnv;
    return validateBody;
  };
}

/**
 * What a refused JSON body was. Fastify's parser (secure-json-parse) refuses `__proto__` keys and
 * `constructor.prototype` with the same error as broken JSON; text that JSON.parse reads is valid
 * JSON, so the refusal was for such a key, and the answer says which and where. Only failures pay.
 */
function explainRefusedJson(err: Error, text: string): Error {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return err;
  }
  const found = forbiddenKey(parsed);
  if (!found) return err;
  const message = `the key "${found.key}"${found.key === 'constructor' ? ' holding "prototype"' : ''} is not allowed`;
  return invalidField(found.path || 'body', message);
}

/**
 * A `__proto__` key, or a `constructor` key holding a `prototype`, with the path of the object
 * holding it. Walks with a stack of its own, so no nesting can overflow the call stack.
 */
function forbiddenKey(root: unknown): { key: string; path: string } | undefined {
  const pending: { value: unknown; path: string }[] = [{ value: root, path: '' }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, path } = next;
    if (value === null || typeof value !== 'object') continue;
    // JSON.parse makes `__proto__` an own property, so Object.hasOwn sees it.
    if (Object.hasOwn(value, '__proto__')) return { key: '__proto__', path };
    const record = value as Record<string, unknown>;
    const ctor = Object.hasOwn(value, 'constructor') ? record.constructor : undefined;
    if (ctor !== null && typeof ctor === 'object' && Object.hasOwn(ctor, 'prototype')) {
      return { key: 'constructor', path };
    }
    for (const key of Object.keys(record)) {
      pending.push({ value: record[key], path: path ? `${path}.${key}` : key });
    }
  }
  return undefined;
}
