// Signing-secret rotation: a new whsec secret now, while the old one keeps signing alongside it for
// a grace period (default 24 h), so receivers can switch without dropping a single webhook. Both
// signatures go out in `webhook-signature` (space-separated) until the grace period ends.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { generateSigningSecret } from '../domain/signing.js';
import { toIsoSeconds } from '../domain/time.js';
import { notFound } from '../errors.js';
import type { AppContext } from './context.js';
import { errors, IdParams } from './schemas.js';
import { presentSubscription } from './subscriptions.js';

const DAY_SECONDS = 86_400;

const RotateBody = Type.Object(
  {
    grace_period_seconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 7 * DAY_SECONDS,
        description: 'how long the old secret still signs; default 86400',
      }),
    ),
  },
  { additionalProperties: false },
);

const Rotated = Type.Object({
  subscriptions: Type.Array(
    Type.Object({
      id: Type.String(),
      target_url: Type.String(),
      event_type: Type.String(),
      status: Type.String(),
      created_at: Type.String({ format: 'date-time' }),
      updated_at: Type.String({ format: 'date-time' }),
      has_secret_token: Type.Boolean(),
      disabled_reason: Type.Union([Type.String(), Type.Null()]),
      signing_secret: Type.String({ description: 'the new whsec_… secret; shown only in this response' }),
      previous_secret_expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    }),
  ),
});

export function rotationRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof RotateBody> | undefined }>(
      '/v1/webhooks/subscriptions/:id/rotate-secret',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Rotate the signing secret; the old one signs alongside for a grace period',
          params: IdParams,
          body: Type.Optional(RotateBody),
          response: { 200: Rotated, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const now = Date.now();
        const grace = (request.body?.grace_period_seconds ?? DAY_SECONDS) * 1000;
        const secret = generateSigningSecret();
        const sub = await ctx.store.rotateSigningSecret(
          request.principal.accountId,
          request.params.id,
          ctx.secrets.seal(secret),
          now + grace,
          now,
        );
        if (!sub) throw notFound('subscription');
        return {
          subscriptions: [
            {
              ...presentSubscription(sub),
              signing_secret: secret,
              previous_secret_expires_at:
                sub.previous_secret_expires_at === null ? null : toIsoSeconds(sub.previous_secret_expires_at),
            },
          ],
        };
      },
    );
  };
}
