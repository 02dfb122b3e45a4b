// Seed API 1: the account callback (Conga Sign style). PUT registers it and answers with the
// documented echo of the request; GET (ours) shows the current setting with secrets masked.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { callbackSeal } from '../domain/secret-box.js';
import { toIsoSeconds } from '../domain/time.js';
import { invalidField } from '../errors.js';
import { CircuitView, circuitsFor } from './circuit.js';
import type { AppContext } from './context.js';
import { errors } from './schemas.js';
import { checkTargetUrlResolved } from './target-guard.js';

const AuthType = Type.String({ enum: ['Basic', 'Bearer', 'None'] });
const Credential = Type.String({ maxLength: 1024 });

const RegisterBody = Type.Object(
  {
    callbackUrl: Type.String({ maxLength: 2048, description: 'https URL; an empty string disables the callback' }),
    authType: AuthType,
    username: Type.Optional(Credential),
    password: Type.Optional(Credential),
    bearerToken: Type.Optional(Credential),
  },
  { additionalProperties: false },
);
type RegisterBody = Static<typeof RegisterBody>;

const RegisterEcho = Type.Object({
  callbackUrl: Type.String(),
  authType: AuthType,
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  bearerToken: Type.Optional(Type.String()),
});

const CurrentCallback = Type.Object({
  callbackUrl: Type.String(),
  authType: AuthType,
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String({ description: 'always masked' })),
  bearerToken: Type.Optional(Type.String({ description: 'always masked' })),
  enabled: Type.Boolean(),
  updatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  signed: Type.Boolean({
    description: 'whether callback deliveries carry webhook-signature (POST /api/sign/v1/callback/rotate-secret)',
  }),
  circuit: CircuitView,
});

const MASK = '********';

/** The fields each authType requires; any other credential field is refused. */
const FIELDS_FOR: Record<string, (keyof RegisterBody)[]> = {
  Basic: ['username', 'password'],
  Bearer: ['bearerToken'],
  None: [],
};

// Credentials go into the Authorization header of every callback. What could not (undici refuses a
// header value holding a control character other than tab, or one above U+00FF: every send would
// fail) or would arrive changed (HTTP trims surrounding white space) is refused at registration.
// Tabs and C1 controls (U+0080-U+009F) are refused as well: no token or password needs one.
const CONTROL_CHARACTER = /\p{Cc}/u;
const BEYOND_LATIN1 = /[\u0100-\u{10ffff}]/u;
/** What HTTP trims from a header value (RFC 9110 OWS). */
const SURROUNDING_SPACE = /^[ \t]|[ \t]$/;

/** Throws a 400 for credentials that cannot travel as they were given. */
function checkCredentials(body: RegisterBody): void {
  const { username, password, bearerToken } = body;
  if (bearerToken !== undefined) {
    if (CONTROL_CHARACTER.test(bearerToken)) {
      throw invalidField(
        'bearerToken',
        'must not contain line breaks, tabs or other control characters; it is sent in an HTTP header',
      );
    }
    if (BEYOND_LATIN1.test(bearerToken)) {
      throw invalidField(
        'bearerToken',
        'must contain only Latin-1 characters (up to U+00FF); it is sent in an HTTP header as is',
      );
    }
    if (SURROUNDING_SPACE.test(bearerToken)) {
      throw invalidField(
        'bearerToken',
        'must not start or end with white space; HTTP trims it, so the receiver would see another token',
      );
    }
  }
  if (username !== undefined) {
    if (username.includes(':')) {
      throw invalidField(
        'username',
        'must not contain ":"; Basic authentication puts one between username and password (RFC 7617)',
      );
    }
    if (CONTROL_CHARACTER.test(username)) {
      throw invalidField('username', 'must not contain line breaks or other control characters (RFC 7617)');
    }
  }
  if (password !== undefined && CONTROL_CHARACTER.test(password)) {
    throw invalidField('password', 'must not contain line breaks or other control characters (RFC 7617)');
  }
}

export function callbackRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.put<{ Body: RegisterBody }>(
      '/api/sign/v1/callback/register',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['callback'],
          summary: 'Register, update or disable the account callback',
          body: RegisterBody,
          response: { 200: RegisterEcho, ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        const body = request.body;
        const required = FIELDS_FOR[body.authType] as (keyof RegisterBody)[];
        for (const field of required) {
          if (body[field] === undefined) throw invalidField(field, `is required when authType is ${body.authType}`);
          if (body[field] === '') throw invalidField(field, 'must not be empty');
        }
        for (const field of ['username', 'password', 'bearerToken'] as const) {
          if (body[field] !== undefined && !required.includes(field)) {
            throw invalidField(field, `is not used when authType is ${body.authType}`);
          }
        }
        checkCredentials(body);
        const url =
          body.callbackUrl === ''
            ? ''
            : await checkTargetUrlResolved(body.callbackUrl, 'callbackUrl', ctx.targetPolicy, ctx.resolve);
        await ctx.store.putCallback({
          account_id: request.principal.accountId,
          url,
          auth_type: body.authType as 'Basic' | 'Bearer' | 'None',
          username: body.username ?? null,
          password_sealed:
            body.password === undefined
              ? null
              : ctx.secrets.seal(body.password, callbackSeal('password', request.principal.accountId)),
          bearer_token_sealed:
            body.bearerToken === undefined
              ? null
              : ctx.secrets.seal(body.bearerToken, callbackSeal('bearer_token', request.principal.accountId)),
          updated_at: Date.now(),
        });
        // The seed documents the response as the request echoed back, credentials included.
        return body;
      },
    );

    app.get(
      '/api/sign/v1/callback',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['callback'],
          summary: 'The current account callback, with credentials masked',
          response: { 200: CurrentCallback, ...errors(401, 403) },
        },
      },
      async (request) => {
        const accountId = request.principal.accountId;
        const cb = await ctx.store.getCallback(accountId);
        // The callback's endpoint is keyed by its account.
        const circuit = (await circuitsFor(ctx.store, accountId, [accountId]))(accountId);
        if (!cb) return { callbackUrl: '', authType: 'None', enabled: false, updatedAt: null, signed: false, circuit };
        return {
          callbackUrl: cb.url,
          authType: cb.auth_type,
          ...(cb.auth_type === 'Basic' ? { username: cb.username ?? '', password: MASK } : {}),
          ...(cb.auth_type === 'Bearer' ? { bearerToken: MASK } : {}),
          enabled: cb.url !== '',
          updatedAt: toIsoSeconds(cb.updated_at),
          signed: cb.signing_secret_sealed !== null,
          circuit,
        };
      },
    );
  };
}
