// Signing-secret rotation, for a subscription and for the account callback: a new whsec secret
// now, while the one it replaces keeps signing alongside it for a grace period (default 24 h), so
// receivers can switch without dropping a single webhook. Every secret still in its grace period
// signs (`webhook-signature` carries one `v1,` entry each) until its own expiry; a second rotation
// within the grace period keeps the first one's secret too.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { callbackSeal, subscriptionSeal } from '../domain/secret-box.js';
import { retiredInGrace } from '../domain/secret-rotation.js';
import { generateSigningSecret } from '../domain/signing.js';
import { toIsoSeconds } from '../domain/time.js';
import { notFound } from '../errors.js';
import type { AppContext } from './context.js';
import { errors, IdParams } from './schemas.js';
import { presentSubscription, SubscriptionView } from './subscriptions.js';

const DAY_SECONDS = 86_400;

const RotateBody = Type.Object(
  {
    grace_period_seconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 7 * DAY_SECONDS,
        description: 'how long the secret being replaced still signs; default 86400; 0 drops it at once',
      }),
    ),
  },
  { additionalProperties: false },
);
type RotateBody = Static<typeof RotateBody>;

const Expiry = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);
const StillSigning = Type.Array(Type.String({ format: 'date-time' }), {
  description: 'when each secret still in its grace period stops signing, latest first',
});

const Rotated = Type.Object({
  subscriptions: Type.Array(
    Type.Composite([
      SubscriptionView,
      Type.Object({
        signing_secret: Type.String({ description: 'the new whsec_… secret; shown only in this response' }),
        previous_secret_expires_at: Type.Union([Expiry], {
          description: 'when the secret this rotation replaced stops signing; null when it stopped at once',
        }),
        previous_secrets_expire_at: StillSigning,
      }),
    ]),
  ),
});

const CallbackRotated = Type.Object({
  signing_secret: Type.String({
    description: 'the account callback’s new whsec_… secret; shown only in this response',
  }),
  previous_secret_expires_at: Type.Union([Expiry], {
    description: 'when the secret this rotation replaced stops signing; null when there was none or it stopped at once',
  }),
  previous_secrets_expire_at: StillSigning,
});

/** The grace period asked for, as the time the replaced secret stops signing. */
function graceUntil(body: RotateBody | undefined, now: number): number {
  return now + (body?.grace_period_seconds ?? DAY_SECONDS) * 1000;
}

/** What a rotation reports about the secrets still signing beside the new one. */
function stillSigning(retiredJson: string, replaced: string | null, now: number) {
  const retired = retiredInGrace(retiredJson, now).sort((a, b) => b.expires_at - a.expires_at);
  const previous = replaced === null ? undefined : retired.find((r) => r.sealed === replaced);
  return {
    previous_secret_expires_at: previous ? toIsoSeconds(previous.expires_at) : null,
    previous_secrets_expire_at: retired.map((r) => toIsoSeconds(r.expires_at)),
  };
}

export function rotationRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Params: Static<typeof IdParams>; Body: RotateBody | undefined }>(
      '/v1/webhooks/subscriptions/:id/rotate-secret',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Rotate the signing secret; the old one signs alongside for a grace period',
          params: IdParams,
          body: Type.Optional(RotateBody),
          response: { 200: Rotated, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const now = Date.now();
        const secret = generateSigningSecret();
        const before = await ctx.store.getSubscription(request.principal.accountId, request.params.id);
        if (!before) throw notFound('subscription');
        const sub = await ctx.store.rotateSigningSecret(
          request.principal.accountId,
          request.params.id,
          ctx.secrets.seal(secret, subscriptionSeal('signing_secret', before)),
          graceUntil(request.body, now),
          now,
        );
        if (!sub) throw notFound('subscription');
        return {
          subscriptions: [
            {
              ...presentSubscription(sub),
              signing_secret: secret,
              ...stillSigning(sub.retired_secrets, before.signing_secret_sealed, now),
            },
          ],
        };
      },
    );

    app.post<{ Body: RotateBody | undefined }>(
      '/api/sign/v1/callback/rotate-secret',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['callback'],
          summary:
            'Make (or rotate) the account callback’s signing secret: callback deliveries are then signed the Standard Webhooks way, whatever their authType',
          body: Type.Optional(RotateBody),
          response: { 200: CallbackRotated, ...errors(400, 401, 403, 409) },
        },
      },
      async (request) => {
        const now = Date.now();
        const secret = generateSigningSecret();
        const before = await ctx.store.getCallback(request.principal.accountId);
        const cb = await ctx.store.rotateCallbackSecret(
          request.principal.accountId,
          ctx.secrets.seal(secret, callbackSeal('signing_secret', request.principal.accountId)),
          graceUntil(request.body, now),
          now,
        );
        return {
          signing_secret: secret,
          ...stillSigning(cb.retired_secrets, before?.signing_secret_sealed ?? null, now),
        };
      },
    );
  };
}
