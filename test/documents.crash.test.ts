// The document lifecycle survives a crash: a real `countersign serve` child is SIGKILLed in the
// middle of a burst of steps (create, send, sign, sign), restarted, and every document is then
// consistent: its status, its signers, its events and its audit trail say the same thing, the
// chain verifies, and every step that was answered 200 before the kill is there.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, call, childEnv, killAll, type ServeProcess, serve } from './helpers/children.js';
import { freePort } from './helpers/cli-process.js';
import { DIALECTS, dialectLabel, type TestDatabase } from './helpers/databases.js';

/** What a request cut off by the kill of its server throws: the connection reset, closed or refused. */
function cutOff(err: unknown): boolean {
  const { code, cause } = err as { code?: string; cause?: { code?: string } };
  return [code, cause?.code].some((c) => c !== undefined && CUT_OFF.has(c));
}
const CUT_OFF = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

interface Doc {
  id: string;
  status: string;
  signers: { id: string; email: string; status: string }[];
  audit_url: string;
}

describe('documents across a crash', () => {
  describe.each(DIALECTS)('on $name', (dialect) => {
    describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
      const children: ChildProcess[] = [];
      let database: TestDatabase | undefined;
      let dir: string | undefined;
      const agent = new Agent({ connections: 32 });
      afterAll(() => agent.close());
      afterEach(async () => {
        await killAll(children);
        await database?.drop();
        database = undefined;
        if (dir) rmSync(dir, { recursive: true, force: true });
        dir = undefined;
      });

      it('keeps every document’s state, events and trail consistent after a SIGKILL mid-burst', async () => {
        if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
        database = await dialect.create();
        dir = mkdtempSync(join(tmpdir(), 'countersign-docs-crash-'));
        const env = childEnv({
          PORT: String(await freePort()),
          HOST: '127.0.0.1',
          DATABASE_URL: database.url,
          COUNTERSIGN_MASTER_KEY_FILE: join(dir, 'master.key'),
          COUNTERSIGN_RATE_LIMIT: 'off',
          LOG_LEVEL: 'info',
        });
        const first = await serve(env);
        children.push(first.child);
        const token = first.token as string;
        expect(token).toMatch(/^cst_/);

        // Answered steps, by document: what must have survived.
        const answered = new Map<string, { sent: boolean; signed: Set<string> }>();
        let steps = 0;
        let killed = false;
        const KILL_AFTER = 150;
        /** What a client stops at: the kill was sent, before this request or under it. */
        const KILLED = Symbol('killed');
        const post = async (path: string, status: number, body?: unknown) => {
          if (killed) throw KILLED;
          let res: Awaited<ReturnType<typeof call>>;
          try {
            res = await call(agent, first.url, token, 'POST', path, body);
          } catch (err) {
            // The process died under this request: its fate is unknown, and either is fine. Before
            // the kill no request may fail, and nothing but a broken connection may after.
            if (killed && cutOff(err)) throw KILLED;
            throw err;
          }
          // A killed process answers nothing more: every answer was made before the kill, so each
          // one is the step's own (201 for a new document, 200 for a step), never an error passed over.
          expect(res.status, `${path}: ${JSON.stringify(res.json)}`).toBe(status);
          steps++;
          if (!killed && steps >= KILL_AFTER) {
            killed = true;
            first.child.kill('SIGKILL');
          }
          return res.json as unknown as Doc;
        };
        const client = async (c: number) => {
          try {
            for (let n = 0; ; n++) {
              const doc = await post('/v1/documents', 201, {
                title: `Contract ${c}-${n}`,
                signers: [{ email: `a${c}.${n}@example.com` }, { email: `b${c}.${n}@example.com` }],
              });
              const facts = { sent: false, signed: new Set<string>() };
              answered.set(doc.id, facts);
              await post(`/v1/documents/${doc.id}/send`, 200);
              facts.sent = true;
              for (const signer of doc.signers) {
                await post(`/v1/documents/${doc.id}/signers/${signer.id}/sign`, 200);
                facts.signed.add(signer.id);
              }
            }
          } catch (err) {
            if (err !== KILLED) throw err;
          }
        };
        await Promise.all(Array.from({ length: 12 }, (_, c) => client(c)));
        expect(killed).toBe(true);
        expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });

        const second: ServeProcess = await serve(env);
        children.push(second.child);
        const documents: Doc[] = [];
        let cursor: string | null = null;
        do {
          const page = await call(
            agent,
            second.url,
            token,
            'GET',
            `/v1/documents?limit=100${cursor ? `&cursor=${cursor}` : ''}`,
          );
          documents.push(...(page.json.documents as Doc[]));
          cursor = page.json.next_cursor as string | null;
        } while (cursor);
        // Every document answered 201 is there, and some were caught half-way by the kill.
        const ids = new Set(documents.map((d) => d.id));
        for (const id of answered.keys()) expect(ids.has(id), id).toBe(true);
        expect(new Set(documents.map((d) => d.status)).size).toBeGreaterThan(1);

        for (const doc of documents) {
          const events = (await call(agent, second.url, token, 'GET', `/v1/events?document_id=${doc.id}&limit=100`))
            .json.events as { event: string; data: { signer_id: string } }[];
          const trailRes = await request(doc.audit_url.replace(/^http:\/\/[^/]+/, second.url), { dispatcher: agent });
          const trail = (await trailRes.body.json()) as {
            entries: { action: string; detail: Record<string, string> }[];
            verification: { valid: boolean };
          };
          expect(trail.verification.valid, doc.id).toBe(true);
          const signed = doc.signers.filter((s) => s.status === 'signed').map((s) => s.id);
          const expectedEvents = [
            ...(doc.status === 'draft' ? [] : doc.signers.map(() => 'document.sent')),
            ...signed.map(() => 'document.signed'),
            ...(doc.status === 'completed' ? ['document.completed'] : []),
          ].sort();
          expect(events.map((e) => e.event).sort(), doc.id).toEqual(expectedEvents);
          expect(
            events
              .filter((e) => e.event === 'document.signed')
              .map((e) => e.data.signer_id)
              .sort(),
          ).toEqual([...signed].sort());
          expect(trail.entries.map((e) => e.action)).toEqual([
            'created',
            ...(doc.status === 'draft' ? [] : ['sent']),
            ...trail.entries.filter((e) => e.action === 'signed').map(() => 'signed'),
            ...(doc.status === 'completed' ? ['completed'] : []),
          ]);
          expect(
            trail.entries
              .filter((e) => e.action === 'signed')
              .map((e) => e.detail.signer_id)
              .sort(),
          ).toEqual([...signed].sort());
          expect(doc.status === 'completed').toBe(signed.length === doc.signers.length);
          // What was answered before the kill survived it.
          const facts = answered.get(doc.id);
          if (facts?.sent) expect(doc.status).not.toBe('draft');
          for (const id of facts?.signed ?? []) expect(signed).toContain(id);
        }
      }, 90_000);
    });
  });
});
