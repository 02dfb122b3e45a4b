// The documents and audit commands as an operator runs them: the built CLI as child processes
// against a real `countersign serve` (and its dispatcher) delivering to a real receiver on
// loopback, subscribed to every document event type. A document goes from draft to completed
// through the CLI and each step's webhooks arrive, signed; a refused step exits 1 with the API's
// 409 and changes nothing; `audit verify` passes the chain, and names the entry a hand-written
// UPDATE in the SQLite file broke.
import Database from 'better-sqlite3';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DocumentView, Signer } from '../src/cli/document-commands.js';
import {
  killAllServe,
  makeWorkspace,
  runCli,
  type ServeProcess,
  startServe,
  type Workspace,
} from './helpers/cli-process.js';
import { type ReceivedRequest, type Receiver, startReceiver } from './helpers/receiver.js';

const EVERY_DOCUMENT_EVENT = ['document.sent', 'document.signed', 'document.declined', 'document.completed'];

describe('the documents and audit commands against a running countersign', () => {
  let workspace: Workspace;
  let server: ServeProcess;
  let receiver: Receiver;
  let secret = '';
  /** The CLI's environment: the server's address and the first-start token. */
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[]) => runCli(args, env);
  const json = async <T>(args: string[]) => {
    const result = await cli([...args, '--json']);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as T;
  };
  /** The webhooks that arrived after the first `from`, each verified with the subscription's secret. */
  const webhooks = async (from: number, count: number) => {
    const got = (await receiver.waitFor(from + count)).slice(from);
    expect(got).toHaveLength(count);
    return got.map((r: ReceivedRequest) => {
      const verified = new Webhook(secret).verify(r.body, r.headers as Record<string, string>) as {
        event: string;
        data: Record<string, unknown>;
      };
      return { id: r.headers['webhook-id'], event: verified.event, data: verified.data };
    });
  };
  /** `published evt_… type` lines of a step's output. */
  const published = (stdout: string) =>
    [...stdout.matchAll(/^published (evt_\S+) (\S+)$/gm)].map((m) => ({ id: m[1], event: m[2] }));

  beforeAll(async () => {
    receiver = await startReceiver();
    workspace = makeWorkspace();
    server = await startServe({
      ...workspace.env,
      COUNTERSIGN_NO_DISPATCHER: '',
      COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true',
      COUNTERSIGN_RETRY_SCHEDULE: '0',
    });
    const token = server.printedTokens()[0] as string;
    env = { ...process.env, COUNTERSIGN_API_URL: server.url, COUNTERSIGN_TOKEN: token };
    delete env.NODE_OPTIONS;
    delete env.XDG_CONFIG_HOME;

    // Every document event type, one document's deliveries in publish order (signed, then completed).
    const subscribed = await cli([
      'subscriptions',
      'create',
      '--target-url',
      `${receiver.url}/documents`,
      '--event-type',
      EVERY_DOCUMENT_EVENT.join(','),
      '--ordering',
      'document',
    ]);
    expect(subscribed.code, subscribed.stderr).toBe(0);
    secret = /^signing_secret: (whsec_\S+)/m.exec(subscribed.stdout)?.[1] as string;
    expect(secret).toMatch(/^whsec_/);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await killAllServe();
    await receiver?.close();
    workspace?.remove();
  });

  let lifecycle: DocumentView;

  it('takes a document with two signers from draft to completed, and each step’s webhooks arrive', async () => {
    const created = await cli([
      'documents',
      'create',
      '--title',
      'Master services agreement',
      '--signer',
      'ana@example.com=Ana Lima',
      '--signer',
      'bo@example.com',
      '--external-id',
      'msa-7',
    ]);
    expect(created.code, created.stderr).toBe(0);
    const id = /^id:\s+(doc_\S+)$/m.exec(created.stdout)?.[1] as string;
    expect(id).toMatch(/^doc_/);
    expect(created.stdout).toMatch(/^title:\s+Master services agreement$/m);
    expect(created.stdout).toMatch(/^external_id:\s+msa-7$/m);
    expect(created.stdout).toMatch(/^status:\s+draft$/m);
    expect(created.stdout).toMatch(/^SIGNER\s+STATUS\s+ACTED\s+EMAIL\s+NAME\s+DECLINE REASON$/m);
    expect(created.stdout).toMatch(/^sgn_\S+\s+pending\s+-\s+ana@example\.com\s+Ana Lima\s+-$/m);
    expect(created.stdout).toMatch(/^sgn_\S+\s+pending\s+-\s+bo@example\.com\s+-\s+-$/m);

    const draft = await json<DocumentView>(['documents', 'get', id]);
    expect(draft).toMatchObject({
      id,
      title: 'Master services agreement',
      external_id: 'msa-7',
      status: 'draft',
      signers: [
        { email: 'ana@example.com', name: 'Ana Lima', status: 'pending' },
        { email: 'bo@example.com', name: null, status: 'pending' },
      ],
    });
    const [ana, bo] = draft.signers as [Signer, Signer];
    const payload = (signer: Signer) => ({
      document_id: id,
      signer_email: signer.email,
      audit_url: draft.audit_url,
      title: 'Master services agreement',
      external_id: 'msa-7',
    });

    // send: one document.sent for each signer.
    const sent = await cli(['documents', 'send', id]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stdout).toMatch(/^status:\s+sent$/m);
    const sentEvents = published(sent.stdout);
    expect(sentEvents.map((e) => e.event)).toEqual(['document.sent', 'document.sent']);
    const sentHooks = await webhooks(0, 2);
    expect(sentHooks.map((h) => h.event)).toEqual(['document.sent', 'document.sent']);
    expect(new Set(sentHooks.map((h) => h.id))).toEqual(new Set(sentEvents.map((e) => e.id)));
    expect(sentHooks.map((h) => h.data.signer_email).sort()).toEqual(['ana@example.com', 'bo@example.com']);
    for (const hook of sentHooks) {
      expect(hook.data).toMatchObject(payload(hook.data.signer_email === ana.email ? ana : bo));
    }

    // The first signer signs: one document.signed.
    const first = await cli(['documents', 'sign', id, ana.id]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^status:\s+sent$/m);
    expect(first.stdout).toMatch(
      new RegExp(`^${ana.id}\\s+signed\\s+\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+ana@example\\.com`, 'm'),
    );
    const firstEvents = published(first.stdout);
    expect(firstEvents.map((e) => e.event)).toEqual(['document.signed']);
    const firstHooks = await webhooks(2, 1);
    expect(firstHooks).toEqual([
      { id: firstEvents[0]?.id, event: 'document.signed', data: expect.objectContaining(payload(ana)) },
    ]);

    // The second signs: document.signed, then document.completed.
    const second = await json<DocumentView & { events: { id: string; event: string }[] }>([
      'documents',
      'sign',
      id,
      bo.id,
    ]);
    expect(second.status).toBe('completed');
    expect(second.signers.map((s) => s.status)).toEqual(['signed', 'signed']);
    expect(second.events.map((e) => e.event)).toEqual(['document.signed', 'document.completed']);
    const lastHooks = await webhooks(3, 2);
    expect(lastHooks).toEqual([
      { id: second.events[0]?.id, event: 'document.signed', data: expect.objectContaining(payload(bo)) },
      { id: second.events[1]?.id, event: 'document.completed', data: expect.objectContaining(payload(bo)) },
    ]);
    lifecycle = second;

    const listed = await cli(['documents', 'list']);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, row] = listed.stdout.trim().split('\n');
    expect(header).toMatch(/^ID\s+STATUS\s+SIGNED\s+UPDATED\s+EXTERNAL ID\s+TITLE$/);
    expect(row).toMatch(new RegExp(`^${id}\\s+completed\\s+2/2\\s+\\S+Z\\s+msa-7\\s+Master services agreement$`));
    expect((await cli(['documents', 'list', '--status', 'draft'])).stdout).toBe('no draft documents\n');

    // The audit link opens without a token, and its chain holds.
    const trail = await fetch(draft.audit_url);
    expect(trail.status).toBe(200);
    const body = (await trail.json()) as { entries: { action: string }[]; verification: { valid: boolean } };
    expect(body.entries.map((e) => e.action)).toEqual(['created', 'sent', 'signed', 'signed', 'completed']);
    expect(body.verification.valid).toBe(true);

    const verified = await cli(['audit', 'verify', id]);
    expect(verified).toMatchObject({ code: 0, stdout: 'chain verifies: 5 entries\n', stderr: '' });
  });

  it('refuses a step the status does not allow with the API’s 409 message, and changes nothing', async () => {
    const made = await json<DocumentView>([
      'documents',
      'create',
      '--title',
      'NDA',
      '--signer',
      'cy@example.com=Cy Twombly',
    ]);
    const signer = made.signers[0] as Signer;
    const start = receiver.requests.length;
    expect((await cli(['documents', 'send', made.id])).code).toBe(0);
    expect((await webhooks(start, 1)).map((h) => h.event)).toEqual(['document.sent']);

    const declined = await cli(['documents', 'decline', made.id, signer.id, '--reason', 'wrong counterparty']);
    expect(declined.code, declined.stderr).toBe(0);
    expect(declined.stdout).toMatch(/^status:\s+declined$/m);
    expect(declined.stdout).toMatch(
      new RegExp(`^${signer.id}\\s+declined\\s+\\S+Z\\s+cy@example\\.com\\s+Cy Twombly\\s+wrong counterparty$`, 'm'),
    );
    const [hook] = await webhooks(start + 1, 1);
    expect(hook).toMatchObject({
      event: 'document.declined',
      data: { document_id: made.id, reason: 'wrong counterparty' },
    });

    const state = await json<DocumentView>(['documents', 'get', made.id]);
    const events = async () =>
      (await json<{ events: { id: string }[] }>(['events', 'list', '--document-id', made.id])).events.map((e) => e.id);
    const eventsBefore = await events();
    expect(eventsBefore).toHaveLength(2);

    for (const step of [
      ['sign', made.id, signer.id],
      ['decline', made.id, signer.id, '--reason', 'twice'],
      ['send', made.id],
    ]) {
      const refused = await cli(['documents', ...step]);
      expect(refused.code, step.join(' ')).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(/^countersign: the document is declined: .+\n$/);
    }
    // A step on a completed document too, naming that status.
    const again = await cli(['documents', 'sign', lifecycle.id, lifecycle.signers[0]?.id as string]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^countersign: the document is completed: /);

    expect(await json<DocumentView>(['documents', 'get', made.id])).toEqual(state);
    expect(await events()).toEqual(eventsBefore);
    expect((await cli(['audit', 'verify', made.id])).stdout).toBe('chain verifies: 3 entries\n');

    const missing = await cli(['documents', 'get', 'doc_01JZZZZZZZZZZZZZZZZZZZZZZZ']);
    expect(missing).toMatchObject({ code: 1, stderr: 'countersign: document not found\n' });
    const noSigner = await cli(['documents', 'sign', lifecycle.id, 'sgn_01JZZZZZZZZZZZZZZZZZZZZZZZ']);
    expect(noSigner).toMatchObject({ code: 1, stderr: 'countersign: signer not found\n' });
  });

  it('audit verify exits 1 naming entry 2 once its row is altered in the database, and 0 once restored', async () => {
    const db = new Database(workspace.env.DATABASE_URL as string);
    db.pragma('busy_timeout = 5000');
    try {
      const row = db.prepare('SELECT actor FROM audit_entries WHERE document_id = ? AND seq = 2').get(lifecycle.id) as {
        actor: string;
      };
      expect(row.actor).toMatch(/^tok_/);
      const alter = db.prepare('UPDATE audit_entries SET actor = ? WHERE document_id = ? AND seq = 2');
      expect(alter.run('mallory@example.com', lifecycle.id).changes).toBe(1);

      const broken = await cli(['audit', 'verify', lifecycle.id]);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toBe('');
      expect(broken.stderr).toContain(
        `countersign: the audit chain of ${lifecycle.id} does not verify: entry 2 is broken (hash)`,
      );
      const asJson = await cli(['audit', 'verify', lifecycle.id, '--json']);
      expect(asJson.code).toBe(1);
      expect(JSON.parse(asJson.stdout)).toEqual({ valid: false, entries: 5, first_broken: { seq: 2, reason: 'hash' } });

      // Put back, it verifies again: what failed was the altered row, nothing else.
      alter.run(row.actor, lifecycle.id);
      expect(await cli(['audit', 'verify', lifecycle.id])).toMatchObject({
        code: 0,
        stdout: 'chain verifies: 5 entries\n',
      });

      // An entry cut off the end is caught by the head the document row keeps.
      const last = db.prepare('SELECT * FROM audit_entries WHERE document_id = ? AND seq = 5').get(lifecycle.id);
      db.prepare('DELETE FROM audit_entries WHERE document_id = ? AND seq = 5').run(lifecycle.id);
      const cut = await cli(['audit', 'verify', lifecycle.id]);
      expect(cut.code).toBe(1);
      expect(cut.stderr).toContain('entry 5 is broken (head)');
      const columns = Object.keys(last as Record<string, unknown>);
      db.prepare(
        `INSERT INTO audit_entries (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`,
      ).run(last);
    } finally {
      db.close();
    }
    expect((await cli(['audit', 'verify', lifecycle.id])).code).toBe(0);
  });

  it('answers a usage error with exit 2 and says what is wrong', async () => {
    for (const [args, message] of [
      [['documents', 'create', '--signer', 'ana@example.com'], 'documents create needs --title'],
      [['documents', 'create', '--title', 'T'], 'documents create needs --signer'],
      [
        ['documents', 'create', '--title', 'T', '--signer', '=Ana'],
        '--signer takes an address, or address=name, got "=Ana"',
      ],
      [['documents', 'create', '--title', 'T', '--signer', 'ana@example.com='], 'got "ana@example.com="'],
      [['documents', 'decline', lifecycle.id, 'sgn_x'], 'documents decline needs --reason'],
      [['documents', 'sign', lifecycle.id], 'documents sign needs the signer id'],
      [['documents', 'list', '--status', 'lost'], 'lost'],
      [['documents', 'list', '--limit', '0'], '--limit must be an integer from 1 to 100, got "0"'],
      [['documents'], 'documents needs a command: create, list, get, send, sign, decline'],
      [['audit'], 'audit needs a command: verify'],
      [['audit', 'verify'], 'audit verify needs the document id'],
    ] as const) {
      const result = await cli([...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toContain(message);
    }
    // The API's own checks (a malformed address, a repeated signer) are its refusals: exit 1.
    const repeated = await cli([
      'documents',
      'create',
      '--title',
      'T',
      '--signer',
      'a@example.com',
      '--signer',
      'A@example.com',
    ]);
    expect(repeated.code).toBe(1);
    expect(repeated.stderr).toContain('signers[1].email');
  });
});
