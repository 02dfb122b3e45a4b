// Portal sessions: an admin token asks for a link that opens the browser portal signed in as its
// account. The link carries a new token of kind `portal` with the scopes `read` and `write` only,
// expiring within a day, so handing the link to a customer never hands over publishing or token
// management. The token is in the URL's fragment (`/ui/#token=…`): browsers never send the
// fragment to a server, so it stays out of access logs, proxies and Referer headers. It is shown
// in this one answer and never logged.

import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { toIsoMillis } from '../domain/time.js';
import { issueToken } from '../domain/tokens.js';
import { notFound } from '../errors.js';
import type { Scope } from './auth.js';
import type { AppContext } from './context.js';
import { type LinkSettings, linkBase } from './link-base.js';
import { errors, IdParams } from './schemas.js';

/** What a portal session may do: everything the portal shows and changes, nothing more. */
export const PORTAL_SCOPES: Scope[] = ['read', 'write'];
export const PORTAL_EXPIRY_SECONDS = { default: 3600, minimum: 60, maximum: 86_400 } as const;

const SessionBody = Type.Object(
  {
    expires_in_seconds: Type.Optional(
      Type.Integer({
        minimum: PORTAL_EXPIRY_SECONDS.minimum,
        maximum: PORTAL_EXPIRY_SECONDS.maximum,
        description: `how long the link works; default ${PORTAL_EXPIRY_SECONDS.default}`,
      }),
    ),
  },
  { additionalProperties: false },
);
type SessionBody = Static<typeof SessionBody>;

const Session = Type.Object({
  id: Type.String({ description: 'the session’s token id, for DELETE /v1/portal/sessions/{id}' }),
  url: Type.String({
    description: 'the portal link, `<base>/ui/#token=<token>`: the token is in the fragment, never sent to a server',
  }),
  expires_at: Type.String({ format: 'date-time' }),
});

const ABOUT_SCOPES =
  'The link’s token has the scopes read and write: its holder can read and change the account’s ' +
  'subscriptions and callback (secrets and their rotation included), read its events and deliveries, ' +
  'redeliver, replay, recover and send test events. It can never publish events (scope publish) nor ' +
  'make or revoke tokens or portal sessions (scope admin). Anyone holding the link holds that access ' +
  'until it expires or is revoked.';

export function portalSessionRoutes(ctx: AppContext, links: LinkSettings): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: SessionBody | undefined }>(
      '/v1/portal/sessions',
      {
        config: { scope: 'admin' },
        schema: {
          tags: ['portal'],
          summary: 'Make a link that opens the portal signed in as this account',
          description: ABOUT_SCOPES,
          body: Type.Optional(SessionBody),
          response: { 201: Session, ...errors(400, 401, 403, 409) },
        },
      },
      async (request, reply) => {
        const now = Date.now();
        const seconds = request.body?.expires_in_seconds ?? PORTAL_EXPIRY_SECONDS.default;
        const expiresAt = now + seconds * 1000;
        const issued = issueToken();
        const { id } = await ctx.store.createToken({
          accountId: request.principal.accountId,
          lookup: issued.lookup,
          hash: issued.hash,
          scopes: PORTAL_SCOPES,
          expiresAt,
          now,
          kind: 'portal',
          maxLive: ctx.quotas.portalSessions,
        });
        return reply.code(201).send({
          id,
          url: `${linkBase(links, request)}/ui/#token=${issued.token}`,
          expires_at: toIsoMillis(expiresAt),
        });
      },
    );

    app.delete<{ Params: Static<typeof IdParams> }>(
      '/v1/portal/sessions/:id',
      {
        config: { scope: 'admin' },
        schema: {
          tags: ['portal'],
          summary: 'End a portal session: its link stops working at once',
          description:
            '404 when the id is not a portal session of this account that is still open (API tokens are revoked ' +
            'with the CLI, `countersign token revoke`).',
          params: IdParams,
          response: { 204: Type.Null(), ...errors(401, 403, 404) },
        },
      },
      async (request, reply) => {
        const revoked = await ctx.store.revokePortalToken(request.principal.accountId, request.params.id, Date.now());
        if (!revoked) throw notFound('portal session');
        return reply.code(204).send();
      },
    );
  };
}
