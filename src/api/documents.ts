// Documents and signers (issue 18): a small signing lifecycle of countersign's own, beside
// POST /v1/events. Each step (create, send, sign, decline) changes the document, appends to its
// audit trail (a hash chain) and makes its events in one transaction; a step the document's state
// does not allow is a 409 naming that state, and changes nothing. Every event's audit_url is a
// link the server signs (HMAC under a key kept sealed by the master key), so a receiver opens the
// trail without an API token: JSON, or a readable page when a browser asks for HTML.
import { randomBytes } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  type AuditEntry,
  auditLinkSig,
  type ChainHead,
  type ChainKey,
  type ChainVerdict,
  checkAuditLink,
  verifyChain,
} from '../domain/audit-chain.js';
import { type SecretBox, settingSeal } from '../domain/secret-box.js';
import { toIsoMillis, toIsoSeconds } from '../domain/time.js';
import { CountersignError, invalidField, notFound } from '../errors.js';
import { AUDIT_CHAIN_KEY, AUDIT_LINK_KEY } from '../store/reseal.js';
import type { DocumentRecord, DocumentStep, StepContext, Store } from '../store/store.js';
import type { AppContext } from './context.js';
import { type LinkSettings, linkBase } from './link-base.js';
import { errors, NextCursor, PageQuery } from './schemas.js';

const DocumentStatusSchema = Type.String({ enum: ['draft', 'sent', 'completed', 'declined'] });

const SignerView = Type.Object({
  id: Type.String(),
  email: Type.Union([Type.String(), Type.Null()], { description: 'null once erased (POST /v1/erasure)' }),
  name: Type.Union([Type.String(), Type.Null()]),
  status: Type.String({ enum: ['pending', 'signed', 'declined'] }),
  acted_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'when the signer signed or declined',
  }),
  decline_reason: Type.Union([Type.String(), Type.Null()]),
});

export const DocumentView = Type.Object({
  id: Type.String(),
  title: Type.String(),
  external_id: Type.Union([Type.String(), Type.Null()]),
  status: DocumentStatusSchema,
  signers: Type.Array(SignerView),
  audit_url: Type.String({
    description: 'The audit trail, behind a link the server signs: it opens without a token. Every event names it.',
  }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

const StepView = Type.Composite([
  DocumentView,
  Type.Object({
    events: Type.Array(Type.Object({ id: Type.String(), event: Type.String() }), {
      description: 'the events this step made, in order',
    }),
  }),
]);

const CreateBody = Type.Object(
  {
    title: Type.String({ minLength: 1, maxLength: 500 }),
    signers: Type.Array(
      Type.Object(
        {
          email: Type.String({ format: 'email', maxLength: 320 }),
          name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 50 },
    ),
    external_id: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256, description: 'your own id for the document, carried in its events' }),
    ),
  },
  { additionalProperties: false },
);

const DeclineBody = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 1000 }) },
  { additionalProperties: false },
);

const DocParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
const SignerParams = Type.Object({ id: Type.String({ maxLength: 64 }), signer_id: Type.String({ maxLength: 64 }) });

const ListQuery = Type.Object(
  { ...PageQuery, status: Type.Optional(DocumentStatusSchema) },
  { additionalProperties: false },
);

const Verdict = Type.Object({
  valid: Type.Boolean(),
  entries: Type.Integer({ description: 'entries read' }),
  first_broken: Type.Union(
    [
      Type.Object({
        seq: Type.Integer(),
        reason: Type.String({
          enum: ['sequence', 'version', 'prev_hash', 'hash', 'head', 'status', 'title'],
          description:
            'sequence: a number is missing or repeated; version: an unkeyed entry where only keyed ones may be; ' +
            'prev_hash: it does not name the entry before; hash: its own hash does not match its content; head: ' +
            'entries are missing from the end; status: the document’s status is not what its entries add up to; ' +
            'title: the document’s title is not the one its first entry committed to',
        }),
      }),
      Type.Null(),
    ],
    { description: 'the first entry that does not hold; null when the chain verifies' },
  ),
});

const Erasable = { description: 'null once erased' };
const EntryView = Type.Object({
  seq: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  action: Type.String({ enum: ['created', 'sent', 'signed', 'declined', 'completed'] }),
  actor: Type.Union([Type.String(), Type.Null()], {
    description: 'the token id, or the signer’s e-mail address; null once erased',
  }),
  ip: Type.Union([Type.String(), Type.Null()], Erasable),
  user_agent: Type.Union([Type.String(), Type.Null()], Erasable),
  detail: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()], Erasable),
  salt: Type.Union([Type.String(), Type.Null()], {
    description: 'the salt of `personal`; null once erased, so the erased fields cannot be guessed back',
  }),
  personal: Type.String({
    description: 'SHA-256 (hex) of salt and the canonical JSON of actor, ip, user_agent and detail',
  }),
  prev_hash: Type.String(),
  v: Type.Integer({
    enum: [1, 2, 3],
    description:
      '3: hash is HMAC-SHA256 under the database’s chain key (sealed by the master key), over a text naming the document; 2: the same without the document (entries made before version 3); 1: plain SHA-256, for entries made before the key existed',
  }),
  hash: Type.String({
    description:
      'v 3: HMAC-SHA256 (hex) under the chain key of prev_hash and the canonical JSON of seq, at (RFC 3339, ms), action, personal, v and document (the document id); v 2: the same without document; v 1: SHA-256 of prev_hash and the canonical JSON without v and document',
  }),
});

/**
 * An entry as the signed link shows it to whoever holds the link (receivers, signers, a court):
 * the signer's own steps under their address, the platform's as `platform`, and neither the
 * token that took a step nor the platform backend's IP address and user agent.
 */
const PublicEntryView = Type.Object({
  seq: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  action: Type.String({ enum: ['created', 'sent', 'signed', 'declined', 'completed'] }),
  actor: Type.Union([Type.String(), Type.Null()], {
    description:
      'the signer’s e-mail address for their own step, `platform` for a step taken through the API; null once erased',
  }),
  detail: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()], Erasable),
  personal: Type.String({ description: 'the commitment to the entry’s personal fields (see the authenticated trail)' }),
  prev_hash: Type.String(),
  v: Type.Integer({ enum: [1, 2, 3] }),
  hash: Type.String(),
});

const TrailView = Type.Object({
  document_id: Type.String(),
  title: Type.String(),
  status: DocumentStatusSchema,
  entries: Type.Array(PublicEntryView),
  verification: Verdict,
});

/** The whole trail, for the account's own tokens: every recorded field. */
const FullTrailView = Type.Object({
  document_id: Type.String(),
  title: Type.String(),
  external_id: Type.Union([Type.String(), Type.Null()]),
  status: DocumentStatusSchema,
  entries: Type.Array(EntryView),
  verification: Verdict,
});

const LinkQuery = Type.Object(
  {
    sig: Type.String({ maxLength: 128 }),
    exp: Type.Optional(Type.String({ pattern: '^[0-9]{1,16}$', description: 'when the link expires, epoch ms' })),
  },
  { additionalProperties: false },
);

/**
 * The key audit links are signed with: 32 random bytes made once per database and kept sealed
 * under the master key (countersign_settings), so every process signs alike and a master-key
 * rotation, which re-seals it, leaves the links already sent in webhooks working.
 */
export async function auditLinkKey(store: Store, secrets: SecretBox): Promise<Buffer> {
  const where = settingSeal(AUDIT_LINK_KEY);
  const sealed = await store.putSettingIfAbsent(
    AUDIT_LINK_KEY,
    secrets.seal(randomBytes(32).toString('base64'), where),
  );
  return Buffer.from(secrets.open(sealed, where), 'base64');
}

/**
 * The audit chain's key: made once per database, with the time it was made, and kept sealed by the
 * master key (so rotate-master-key keeps every chain verifying). Entries made before it existed
 * stay unkeyed (version 1).
 */
export async function auditChainKey(store: Store, secrets: SecretBox): Promise<ChainKey> {
  const fresh = JSON.stringify({ key: randomBytes(32).toString('base64'), since: Date.now() });
  const where = settingSeal(AUDIT_CHAIN_KEY);
  const sealed = await store.putSettingIfAbsent(AUDIT_CHAIN_KEY, secrets.seal(fresh, where));
  const { key, since } = JSON.parse(secrets.open(sealed, where)) as { key: string; since: number };
  return { key: Buffer.from(key, 'base64'), since };
}

/** Where the signed links start, how they are signed and how long they last; the chain's key. */
export interface AuditLinks {
  key: Buffer;
  links: LinkSettings;
  chain: ChainKey;
  /** COUNTERSIGN_AUDIT_LINK_TTL: links expire this long after they are given out; undefined: never. */
  ttlMs?: number | undefined;
}

/** The document's audit link as of now: signed over its link epoch, and expiring when COUNTERSIGN_AUDIT_LINK_TTL says. */
function auditUrl(links: AuditLinks, request: FastifyRequest, doc: { id: string; auditLinkEpoch: number }): string {
  const base = linkBase(links.links, request);
  const expiresAt = links.ttlMs === undefined ? undefined : Date.now() + links.ttlMs;
  const sig = auditLinkSig(links.key, doc.id, doc.auditLinkEpoch, expiresAt);
  return `${base}/v1/documents/${doc.id}/audit?${expiresAt === undefined ? '' : `exp=${expiresAt}&`}sig=${sig}`;
}

function present(doc: DocumentRecord, url: string): Static<typeof DocumentView> {
  return {
    id: doc.id,
    title: doc.title,
    external_id: doc.externalId,
    status: doc.status,
    signers: doc.signers.map((s) => ({
      id: s.id,
      email: s.email,
      name: s.name,
      status: s.status,
      acted_at: s.actedAt === null ? null : toIsoSeconds(s.actedAt),
      decline_reason: s.declineReason,
    })),
    audit_url: url,
    created_at: toIsoSeconds(doc.createdAt),
    updated_at: toIsoSeconds(doc.updatedAt),
  };
}

function presentVerdict(v: ChainVerdict): Static<typeof Verdict> {
  return { valid: v.valid, entries: v.entries, first_broken: v.firstBroken };
}

function presentEntry(e: AuditEntry): Static<typeof EntryView> {
  return { ...e, at: toIsoMillis(e.at) };
}

/** Who took a step, as the public trail names them. */
function publicActor(actor: string | null): string | null {
  return actor === null ? null : actor.startsWith('tok_') ? 'platform' : actor;
}

/** The public actor in the page's words. */
function actorWords(actor: string | null): string {
  const shown = publicActor(actor);
  return shown === null ? '(erased)' : shown === 'platform' ? 'the platform' : shown;
}

function presentPublicEntry(e: AuditEntry): Static<typeof PublicEntryView> {
  return {
    seq: e.seq,
    at: toIsoMillis(e.at),
    action: e.action,
    actor: publicActor(e.actor),
    detail: e.detail,
    personal: e.personal,
    prev_hash: e.prev_hash,
    v: e.v,
    hash: e.hash,
  };
}

/** Who takes the step and from where; how its entries are hashed and its events link to the trail. */
function context(request: FastifyRequest, links: AuditLinks): StepContext {
  const agent = request.headers['user-agent'];
  return {
    actor: request.principal.tokenId,
    ip: request.ip ?? null,
    userAgent: typeof agent === 'string' ? agent.slice(0, 500) : null,
    now: Date.now(),
    auditUrl: (doc) => auditUrl(links, request, doc),
    chainKey: links.chain.key,
  };
}

/** The document as its row says, for the chain to bear out. */
function headOf(doc: DocumentRecord): ChainHead {
  return { documentId: doc.id, seq: doc.auditSeq, hash: doc.auditHash, status: doc.status, title: doc.title };
}

export function documentRoutes(ctx: AppContext, links: AuditLinks): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: Static<typeof CreateBody> }>(
      '/v1/documents',
      {
        config: { scope: 'publish' },
        schema: {
          tags: ['documents'],
          summary: 'Create a draft document with its signers',
          body: CreateBody,
          response: { 201: DocumentView, ...errors(400, 401, 403) },
        },
      },
      async (request, reply) => {
        const seen = new Set<string>();
        for (const [i, s] of request.body.signers.entries()) {
          const email = s.email.toLowerCase();
          if (seen.has(email)) throw invalidField(`signers[${i}].email`, 'names a signer already given');
          seen.add(email);
        }
        const { auditUrl: _none, ...who } = context(request, links);
        const doc = await ctx.store.createDocument(
          {
            accountId: request.principal.accountId,
            title: request.body.title,
            externalId: request.body.external_id ?? null,
            signers: request.body.signers.map((s) => ({ email: s.email, name: s.name ?? null })),
          },
          who,
        );
        return reply.code(201).send(present(doc, auditUrl(links, request, doc)));
      },
    );

    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/v1/documents',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['documents'],
          summary: 'List documents, newest first',
          querystring: ListQuery,
          response: {
            200: Type.Object({ documents: Type.Array(DocumentView), next_cursor: NextCursor }),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => {
        const page = await ctx.store.listDocuments(request.principal.accountId, {
          limit: request.query.limit ?? 20,
          cursor: request.query.cursor,
          status: request.query.status as DocumentRecord['status'] | undefined,
        });
        return {
          documents: page.items.map((d) => present(d, auditUrl(links, request, d))),
          next_cursor: page.nextCursor,
        };
      },
    );

    app.get<{ Params: Static<typeof DocParams> }>(
      '/v1/documents/:id',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['documents'],
          summary: 'One document',
          params: DocParams,
          response: { 200: DocumentView, ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        const doc = await ctx.store.getDocument(request.principal.accountId, request.params.id);
        if (!doc) throw notFound('document');
        return present(doc, auditUrl(links, request, doc));
      },
    );

    const step = async (
      request: FastifyRequest<{ Params: { id: string; signer_id?: string } }>,
      which: DocumentStep,
    ) => {
      const { document, events } = await ctx.store.applyDocumentStep(
        request.principal.accountId,
        request.params.id,
        which,
        context(request, links),
      );
      return {
        ...present(document, auditUrl(links, request, document)),
        events: events.map((e) => ({ id: e.id, event: e.type })),
      };
    };

    app.post<{ Params: Static<typeof DocParams> }>(
      '/v1/documents/:id/send',
      {
        config: { scope: 'publish' },
        schema: {
          tags: ['documents'],
          summary: 'Send a draft: one document.sent event for each signer',
          params: DocParams,
          response: { 200: StepView, ...errors(401, 403, 404, 409) },
        },
      },
      (request) => step(request, { kind: 'send' }),
    );

    app.post<{ Params: Static<typeof SignerParams> }>(
      '/v1/documents/:id/signers/:signer_id/sign',
      {
        config: { scope: 'publish' },
        schema: {
          tags: ['documents'],
          summary: 'A signer signs: document.signed, and document.completed after the last signer',
          params: SignerParams,
          response: { 200: StepView, ...errors(401, 403, 404, 409) },
        },
      },
      (request) => step(request, { kind: 'sign', signerId: request.params.signer_id }),
    );

    app.post<{ Params: Static<typeof SignerParams>; Body: Static<typeof DeclineBody> }>(
      '/v1/documents/:id/signers/:signer_id/decline',
      {
        config: { scope: 'publish' },
        schema: {
          tags: ['documents'],
          summary: 'A signer declines: document.declined, and the document is declined',
          params: SignerParams,
          body: DeclineBody,
          response: { 200: StepView, ...errors(400, 401, 403, 404, 409) },
        },
      },
      (request) => step(request, { kind: 'decline', signerId: request.params.signer_id, reason: request.body.reason }),
    );

    app.get<{ Params: Static<typeof DocParams> }>(
      '/v1/documents/:id/audit/verify',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['documents'],
          summary: 'Recompute the audit chain and name the first broken entry',
          params: DocParams,
          response: { 200: Verdict, ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        const doc = await ctx.store.getDocument(request.principal.accountId, request.params.id);
        if (!doc) throw notFound('document');
        return presentVerdict((await trailOf(ctx, doc, links.chain)).verdict);
      },
    );

    app.get<{ Params: Static<typeof DocParams> }>(
      '/v1/documents/:id/audit/entries',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['documents'],
          summary: 'The whole audit trail, every recorded field, with its verification',
          description:
            'What the signed audit link shows, and what it leaves out for whoever holds the link: the tokens that took ' +
            'the steps, the IP addresses and user agents recorded, and the document’s external_id.',
          params: DocParams,
          response: { 200: FullTrailView, ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        const doc = await ctx.store.getDocument(request.principal.accountId, request.params.id);
        if (!doc) throw notFound('document');
        const { entries, verdict } = await trailOf(ctx, doc, links.chain);
        return {
          document_id: doc.id,
          title: doc.title,
          external_id: doc.externalId,
          status: doc.status,
          entries: entries.map(presentEntry),
          verification: presentVerdict(verdict),
        };
      },
    );

    app.post<{ Params: Static<typeof DocParams> }>(
      '/v1/documents/:id/audit-link/revoke',
      {
        config: { scope: 'publish' },
        schema: {
          tags: ['documents'],
          summary: 'Revoke every audit link given out so far, and get a new one',
          description:
            'The links in webhooks already sent, and any other given out before, answer 403 from now on; the document ' +
            'answered carries the new audit_url, which events made from now on carry too.',
          params: DocParams,
          response: { 200: DocumentView, ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        const doc = await ctx.store.revokeAuditLinks(request.principal.accountId, request.params.id, Date.now());
        if (!doc) throw notFound('document');
        return present(doc, auditUrl(links, request, doc));
      },
    );
  };
}

/** The document's entries, and whether they bear out the document row. */
async function trailOf(
  ctx: AppContext,
  doc: DocumentRecord,
  chain: ChainKey,
): Promise<{ entries: AuditEntry[]; verdict: ChainVerdict }> {
  const entries = await ctx.store.auditEntries(doc.id);
  return { entries, verdict: verifyChain(entries, headOf(doc), chain) };
}

/**
 * The audit trail behind its signed link, outside the token check: the signature is the
 * credential, and a wrong one is a 403 that says nothing of the document.
 */
export function auditLinkRoutes(ctx: AppContext, links: AuditLinks): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Params: Static<typeof DocParams>; Querystring: Static<typeof LinkQuery> }>(
      '/v1/documents/:id/audit',
      {
        schema: {
          tags: ['documents'],
          summary: 'A document’s audit trail, by its signed link (no token); HTML when the client asks for it',
          // The signature in the link is the credential: no bearer token.
          security: [],
          params: DocParams,
          querystring: LinkQuery,
          response: { 200: TrailView, ...errors(400, 403) },
        },
      },
      async (request, reply) => {
        // The same answer for a document that does not exist, a forged link and a revoked one.
        const doc = await ctx.store.getDocument(undefined, request.params.id);
        const expiresAt = request.query.exp === undefined ? undefined : Number(request.query.exp);
        const link = doc
          ? checkAuditLink(links.key, doc.id, doc.auditLinkEpoch, { sig: request.query.sig, expiresAt }, Date.now())
          : 'forged';
        if (!doc || link === 'forged') {
          throw new CountersignError('forbidden', 'this audit link’s signature does not match');
        }
        if (link === 'expired') {
          throw new CountersignError('forbidden', 'this audit link has expired: ask the sender for a new one');
        }
        const { entries, verdict } = await trailOf(ctx, doc, links.chain);
        reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
        if (wantsHtml(request)) return sendHtml(reply, doc, entries, verdict);
        return {
          document_id: doc.id,
          title: doc.title,
          status: doc.status,
          entries: entries.map(presentPublicEntry),
          verification: presentVerdict(verdict),
        };
      },
    );
  };
}

/** A browser asks for text/html before JSON. */
function wantsHtml(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  const html = accept.indexOf('text/html');
  const json = accept.indexOf('application/json');
  return html !== -1 && (json === -1 || html < json);
}

const escapeHtml = (text: string): string =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );

function sendHtml(reply: FastifyReply, doc: DocumentRecord, entries: AuditEntry[], verdict: ChainVerdict) {
  const verdictText = verdict.valid
    ? `The chain verifies: ${verdict.entries} entries, each hashed over the one before.`
    : `The chain is broken at entry ${verdict.firstBroken?.seq} (${verdict.firstBroken?.reason}).`;
  const rows = entries
    .map(
      (e) =>
        `<tr><td>${e.seq}</td><td>${escapeHtml(toIsoMillis(e.at))}</td><td>${escapeHtml(e.action)}</td>` +
        `<td>${escapeHtml(actorWords(e.actor))}</td><td>${escapeHtml(
          Object.entries(e.detail ?? {})
            .map(([k, v]) => `${k}: ${v}`)
            .join(', '),
        )}</td><td><code title="${escapeHtml(e.hash)}">${escapeHtml(e.hash.slice(0, 16))}…</code></td></tr>`,
    )
    .join('\n');
  const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Audit trail: ${escapeHtml(doc.title)}</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1b1f24; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
td { overflow-wrap: anywhere; }
code { font-size: .85rem; white-space: nowrap; }
.ok { color: #116329; } .broken { color: #a40e26; font-weight: 600; }
</style>
</head>
<body>
<h1>Audit trail</h1>
<p><strong>${escapeHtml(doc.title)}</strong> (<code>${escapeHtml(doc.id)}</code>): ${escapeHtml(doc.status)}</p>
<p class="${verdict.valid ? 'ok' : 'broken'}" role="status">${escapeHtml(verdictText)}</p>
<p>Each entry is hashed over the one before it, under a key only this server holds; hover a hash for all of it, or read them whole as JSON from this same link.</p>
<div class="scroll">
<table>
<thead><tr><th scope="col">#</th><th scope="col">Time (UTC)</th><th scope="col">Action</th><th scope="col">Actor</th><th scope="col">Detail</th><th scope="col">Hash</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</div>
</body>
</html>
`;
  return reply
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
    .header('x-content-type-options', 'nosniff')
    .send(page);
}
