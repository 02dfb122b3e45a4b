// GET /v1/me: who the presented token is — its account, scopes, kind and expiry — so a client
// (the portal first of all) can tell what it may do and when it must sign in again. Any valid
// token may ask; it answers from the principal authentication already made, without a query.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { toIsoMillis } from '../domain/time.js';
import { ALL_SCOPES } from './auth.js';
import { errors } from './schemas.js';

const Me = Type.Object({
  account: Type.Object({ id: Type.String(), name: Type.String() }),
  token: Type.Object({
    id: Type.String(),
    scopes: Type.Array(Type.String({ enum: ALL_SCOPES })),
    kind: Type.String({
      enum: ['api', 'portal'],
      description: '`portal` for the token of a portal session (POST /v1/portal/sessions), else `api`',
    }),
    expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description: 'when the token stops working; null when it does not expire',
    }),
  }),
});

export function meRoutes(): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/v1/me',
      {
        schema: {
          tags: ['account'],
          summary: 'The account and token this request is authenticated as; any valid token, no scope needed',
          response: { 200: Me, ...errors(401) },
        },
      },
      async (request) => {
        const p = request.principal;
        return {
          account: { id: p.accountId, name: p.accountName },
          token: {
            id: p.tokenId,
            scopes: [...p.scopes],
            kind: p.kind,
            expires_at: p.expiresAt === null ? null : toIsoMillis(p.expiresAt),
          },
        };
      },
    );
  };
}
