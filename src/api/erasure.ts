// POST /v1/erasure: remove a signer's address, or a document, from what the account has stored
// (store/erasure.ts says how). Admin scope: it changes history for good. The subject is never
// logged; the one log line carries the counts.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { type ErasureSubject, isEmailAddress, MAX_DOCUMENT_ID_LENGTH, MAX_EMAIL_LENGTH } from '../domain/erasure.js';
import { describeSpan } from '../domain/time.js';
import { CountersignError, invalidField } from '../errors.js';
import type { AppContext } from './context.js';
import { errors } from './schemas.js';

const ErasureBody = Type.Object(
  {
    signer_email: Type.Optional(
      Type.String({
        maxLength: MAX_EMAIL_LENGTH,
        description: 'erase every event whose data holds this address as a string value, in any letter case',
      }),
    ),
    document_id: Type.Optional(
      Type.String({
        maxLength: MAX_DOCUMENT_ID_LENGTH,
        description: 'erase every event of this document (data.document_id)',
      }),
    ),
  },
  { additionalProperties: false, description: 'Exactly one of signer_email and document_id.' },
);
type ErasureBody = Static<typeof ErasureBody>;

const Erased = Type.Object({
  events_erased: Type.Integer({ description: 'events whose data is now {"erased":true}' }),
  deliveries_cancelled: Type.Integer({
    description: 'deliveries of those events not yet made, cancelled (one being sent may still arrive once)',
  }),
  attempts_scrubbed: Type.Integer({
    description: 'attempts of the account whose logged answer or error held the subject, now without it',
  }),
  documents_scrubbed: Type.Integer({
    description:
      'documents (POST /v1/documents) whose signers or audit entries held the subject: the signer’s email and name, ' +
      'and the personal fields of the entries, are gone; the audit chain still verifies',
  }),
  complete: Type.Boolean({
    description: 'false when a copy may remain (see warnings); erasing again is safe and finishes the job',
  }),
  warnings: Type.Array(Type.String()),
});

const ABOUT =
  'Matching events keep their id, type and times; their data becomes {"erased":true}. Their deliveries not yet ' +
  'made are cancelled: a delivery already being sent cannot be called back, so its receiver may still get it ' +
  'once, and its answer is scrubbed when it is logged (the erasure waits up to 20 s for it). Every attempt of ' +
  'the account whose answer (excerpt, headers) or error holds the address or document id loses that text, ' +
  'whichever event it was for. On SQLite the database file is then rebuilt and its WAL truncated, so no old ' +
  'copy stays on disk; the process holds its other requests meanwhile (about 1.7 s for a 250 MB file). An ' +
  'erasure that changed nothing (and follows no unfinished rebuild) rebuilds nothing. ' +
  'Erasing again is safe: what was erased is not counted twice.';

/**
 * One account may erase COUNTERSIGN_ERASURE_RATE_LIMIT times per window: each erasure may rebuild
 * the SQLite file, which holds every other request meanwhile. A 429 with Retry-After past it.
 */
function refuseIfTooFrequent(ctx: AppContext, accountId: string, reply: FastifyReply): void {
  const decision = ctx.erasureLimiter?.take(accountId, Date.now());
  if (decision === undefined || decision.allowed) return;
  const resetSeconds = Math.max(1, Math.ceil(decision.resetInMs / 1000));
  reply.header('retry-after', resetSeconds);
  throw new CountersignError(
    'rate_limited',
    `this account may erase ${decision.limit} times per ${describeSpan(ctx.erasureLimiter?.windowMs ?? 0)}; retry in ${describeSpan(resetSeconds * 1000)}`,
  );
}

/** The subject of a valid body; a 400 naming the field otherwise. */
function subjectOf(body: ErasureBody): ErasureSubject {
  const { signer_email: email, document_id: documentId } = body;
  if ((email === undefined) === (documentId === undefined)) {
    throw invalidField('body', 'give exactly one of signer_email and document_id');
  }
  if (email !== undefined) {
    if (!isEmailAddress(email)) throw invalidField('signer_email', 'must be an email address');
    return { signerEmail: email };
  }
  if (documentId === '') throw invalidField('document_id', 'must be a non-empty string');
  return { documentId: documentId as string };
}

export function erasureRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: ErasureBody }>(
      '/v1/erasure',
      {
        config: { scope: 'admin' },
        schema: {
          tags: ['erasure'],
          summary: 'Erase a signer’s address or a document from stored events and attempts',
          description: ABOUT,
          body: ErasureBody,
          response: { 200: Erased, ...errors(400, 401, 403, 429) },
        },
      },
      async (request, reply) => {
        const subject = subjectOf(request.body);
        refuseIfTooFrequent(ctx, request.principal.accountId, reply);
        const outcome = await ctx.store.eraseSubject(request.principal.accountId, subject, Date.now());
        const answer = {
          events_erased: outcome.eventsErased,
          deliveries_cancelled: outcome.deliveriesCancelled,
          attempts_scrubbed: outcome.attemptsScrubbed,
          documents_scrubbed: outcome.documentsScrubbed,
          complete: outcome.complete,
          warnings: outcome.warnings,
        };
        const by = 'signerEmail' in subject ? 'signer_email' : 'document_id';
        request.log[outcome.complete ? 'info' : 'warn'](
          { reqId: request.id, account: request.principal.accountId, by, ...answer },
          'erasure done',
        );
        return answer;
      },
    );
  };
}
