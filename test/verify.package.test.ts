// @countersign/verify, as an integrator uses it: the built package (dist/, through the workspace
// link) verifying signatures made by the standardwebhooks package and real deliveries from a
// running countersign; each refusal with its code; real Express, Fastify and node:http receivers
// getting a real delivery; and the packed tarball installed into a fresh project and used from ESM
// and from CommonJS.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  expressWebhook,
  fastifyWebhook,
  nodeWebhook,
  type VerificationErrorCode,
  verifyWebhook,
  type WebhookEvent,
  WebhookVerificationError,
} from '@countersign/verify';
import express from 'express';
import Fastify from 'fastify';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apiOf, SIGNED_DATA } from './helpers/api-client.js';
import { freePort } from './helpers/cli-process.js';
import { sqliteDialect } from './helpers/databases.js';
import { type ReceivedRequest, type Receiver, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService } from './helpers/service.js';

const SECRET = `whsec_${Buffer.from('a 32-byte secret for the tests!!').toString('base64')}`;
const OTHER_SECRET = `whsec_${Buffer.from('another 32-byte secret, rotated.').toString('base64')}`;
const PAYLOAD = JSON.stringify({
  id: 'evt_01JTEST',
  event: 'document.signed',
  timestamp: '2025-12-18T14:30:05Z',
  data: SIGNED_DATA,
  secret_token: 'shhh_its_a_secret',
});

/** Headers as the standardwebhooks package signs them, for PAYLOAD unless told otherwise. */
function signed(secret = SECRET, at = new Date(), payload = PAYLOAD, id = 'evt_01JTEST') {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, at, payload),
  };
}

async function refusal(promise: Promise<unknown>): Promise<VerificationErrorCode> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookVerificationError);
    return (err as WebhookVerificationError).code;
  }
  throw new Error('expected the webhook to be refused');
}

describe('verifyWebhook', () => {
  it('verifies what the standardwebhooks package signs, as a string or as bytes, and returns the event', async () => {
    const headers = signed();
    const event = await verifyWebhook({ payload: PAYLOAD, headers, secret: SECRET });
    expect(event).toEqual(JSON.parse(PAYLOAD));
    const fromBytes = await verifyWebhook({ payload: Buffer.from(PAYLOAD), headers, secret: SECRET });
    expect(fromBytes.id).toBe('evt_01JTEST');
    const fromFetchHeaders = await verifyWebhook({
      payload: new TextEncoder().encode(PAYLOAD).buffer,
      headers: new Headers(headers),
      secret: SECRET,
      secretToken: 'shhh_its_a_secret',
    });
    expect(fromFetchHeaders.data).toEqual(SIGNED_DATA);
  });

  it('accepts any v1 signature in the header, and any of several secrets while rotating', async () => {
    const at = new Date();
    const both = {
      ...signed(SECRET, at),
      'webhook-signature': `${signed(OTHER_SECRET, at)['webhook-signature']} ${signed(SECRET, at)['webhook-signature']}`,
    };
    await expect(verifyWebhook({ payload: PAYLOAD, headers: both, secret: SECRET })).resolves.toBeDefined();
    await expect(verifyWebhook({ payload: PAYLOAD, headers: both, secret: OTHER_SECRET })).resolves.toBeDefined();
    await expect(
      verifyWebhook({ payload: PAYLOAD, headers: signed(SECRET, at), secret: [OTHER_SECRET, SECRET] }),
    ).resolves.toBeDefined();
  });

  it('refuses each kind of bad webhook with its code', async () => {
    const now = Date.now();
    const ok = signed(SECRET, new Date(now));
    expect(await refusal(verifyWebhook({ payload: `${PAYLOAD} `, headers: ok, secret: SECRET }))).toBe('bad_signature');
    expect(await refusal(verifyWebhook({ payload: PAYLOAD, headers: ok, secret: OTHER_SECRET }))).toBe('bad_signature');
    const tamperedId = { ...ok, 'webhook-id': 'evt_other' };
    expect(await refusal(verifyWebhook({ payload: PAYLOAD, headers: tamperedId, secret: SECRET }))).toBe(
      'bad_signature',
    );
    const old = signed(SECRET, new Date(now - 301_000));
    expect(await refusal(verifyWebhook({ payload: PAYLOAD, headers: old, secret: SECRET }))).toBe('timestamp_too_old');
    const ahead = signed(SECRET, new Date(now + 301_000));
    expect(await refusal(verifyWebhook({ payload: PAYLOAD, headers: ahead, secret: SECRET }))).toBe(
      'timestamp_in_future',
    );
    // The tolerance is the caller's: ten minutes lets the old one through.
    await expect(
      verifyWebhook({ payload: PAYLOAD, headers: old, secret: SECRET, toleranceSeconds: 600 }),
    ).resolves.toBeDefined();
    expect(
      await refusal(verifyWebhook({ payload: PAYLOAD, headers: ok, secret: SECRET, secretToken: 'not_the_token' })),
    ).toBe('bad_secret_token');
    const { 'webhook-signature': _, ...unsigned } = ok;
    expect(await refusal(verifyWebhook({ payload: PAYLOAD, headers: unsigned, secret: SECRET }))).toBe(
      'missing_header',
    );
    const notJson = 'not json at all';
    expect(
      await refusal(
        verifyWebhook({ payload: notJson, headers: signed(SECRET, new Date(now), notJson), secret: SECRET }),
      ),
    ).toBe('bad_json');
  });

  it('tells a misconfigured receiver that its secret is not a whsec_ secret', async () => {
    await expect(verifyWebhook({ payload: PAYLOAD, headers: signed(), secret: 'whsec_!!!' })).rejects.toThrow(
      TypeError,
    );
    await expect(verifyWebhook({ payload: PAYLOAD, headers: signed(), secret: [] })).rejects.toThrow(TypeError);
  });
});

describe('verifying real deliveries from countersign', () => {
  let service: TestService;
  let api: ReturnType<typeof apiOf>;
  const servers: { close(): unknown }[] = [];

  // A service per case: every subscription takes document.signed, so one case's publish would
  // otherwise reach the receivers of the cases before it.
  beforeEach(async () => {
    service = await startTestService(sqliteDialect, { dispatcher: { retrySchedule: [0, 100, 200] } });
    api = apiOf(service);
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    await service.close();
  });

  async function deliveredTo(receiver: Receiver, secretToken?: string) {
    const sub = await api.subscribe(`${receiver.url}/hooks`, 'document.signed', secretToken);
    const event = await api.published('document.signed', SIGNED_DATA);
    const [request] = await receiver.waitFor(1);
    return { sub, event, request: request as ReceivedRequest };
  }

  it('verifies a delivery with the subscription’s secret and secret_token, and after a rotation with either secret', async () => {
    const receiver = await startReceiver();
    servers.push(receiver);
    const { sub, event, request } = await deliveredTo(receiver, 'shhh_its_a_secret');
    const verified = await verifyWebhook({
      payload: request.body,
      headers: request.headers,
      secret: sub.secret,
      secretToken: 'shhh_its_a_secret',
    });
    expect(verified).toMatchObject({ id: event.id, event: 'document.signed', data: SIGNED_DATA });
    expect(
      await refusal(verifyWebhook({ payload: request.body, headers: request.headers, secret: OTHER_SECRET })),
    ).toBe('bad_signature');

    const rotated = await service.request({
      method: 'POST',
      url: `/v1/webhooks/subscriptions/${sub.id}/rotate-secret`,
    });
    const newSecret = rotated.json().subscriptions[0].signing_secret as string;
    await api.published('document.signed', SIGNED_DATA);
    const [, second] = await receiver.waitFor(2);
    for (const secret of [sub.secret, newSecret]) {
      await expect(
        verifyWebhook({ payload: second?.body ?? '', headers: second?.headers ?? {}, secret }),
      ).resolves.toBeDefined();
    }
  });

  /** Starts `server` on loopback at `port`. */
  async function listen(server: Server, port: number): Promise<void> {
    await new Promise<void>((done) => server.listen(port, '127.0.0.1', done));
    servers.push({ close: () => new Promise((done) => server.close(done)) });
  }

  /** Subscribes a receiver on a port picked now, before the app that will listen on it is built. */
  async function subscribeAhead(secretToken?: string, path = '/webhooks') {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const sub = await api.subscribe(`${url}${path}`, 'document.signed', secretToken);
    return { port, url, sub };
  }

  it('an Express app with express.raw receives and verifies a real delivery, and refuses a forged one with 401', async () => {
    const { port, url, sub } = await subscribeAhead('tok_express');
    const got: WebhookEvent[] = [];
    const app = express();
    app.post(
      '/webhooks',
      express.raw({ type: 'application/json' }),
      expressWebhook({ secret: sub.secret, secretToken: 'tok_express' }),
      (req, res) => {
        got.push((req as unknown as { webhook: WebhookEvent }).webhook);
        res.status(200).send('ok');
      },
    );
    await listen(createServer(app), port);
    const event = await api.published('document.signed', SIGNED_DATA);
    const delivery = await api.settled(event.id, 'delivered');
    expect(delivery.attempts?.[0]?.status_code).toBe(200);
    expect(got).toEqual([expect.objectContaining({ id: event.id, data: SIGNED_DATA })]);

    const forged = await fetch(`${url}/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signed(OTHER_SECRET) },
      body: PAYLOAD,
    });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({ error: { code: 'bad_signature', message: expect.any(String) } });
    expect(got).toHaveLength(1);
  });

  it('a Fastify app receives and verifies a real delivery from its raw body, and refuses a stale one with 401', async () => {
    const { port, url, sub } = await subscribeAhead();
    const got: WebhookEvent[] = [];
    const app = Fastify();
    await app.register(async (hooks) => {
      fastifyWebhook(hooks, { secret: sub.secret });
      hooks.post('/webhooks', async (request) => {
        got.push((request as unknown as { webhook: WebhookEvent }).webhook);
        return 'ok';
      });
    });
    // The rest of the app keeps Fastify's own JSON parser.
    app.post('/elsewhere', async (request) => request.body);
    await app.listen({ port, host: '127.0.0.1' });
    servers.push(app);

    const event = await api.published('document.signed', SIGNED_DATA);
    const delivery = await api.settled(event.id, 'delivered');
    expect(delivery.attempts?.[0]?.status_code).toBe(200);
    expect(got).toEqual([expect.objectContaining({ id: event.id, event: 'document.signed' })]);

    const stale = await fetch(`${url}/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signed(sub.secret, new Date(Date.now() - 3_600_000)) },
      body: PAYLOAD,
    });
    expect(stale.status).toBe(401);
    expect((await stale.json()).error.code).toBe('timestamp_too_old');
    const elsewhere = await fetch(`${url}/elsewhere`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(await elsewhere.json()).toEqual({ a: 1 });
  });

  it('a node:http receiver verifies a real delivery and refuses a wrong secret_token with 401', async () => {
    const { port, url, sub } = await subscribeAhead('tok_node');
    const got: WebhookEvent[] = [];
    const server = createServer(
      nodeWebhook({ secret: sub.secret, secretToken: 'tok_node' }, (event, _req, response) => {
        got.push(event);
        response.statusCode = 204;
        response.end();
      }),
    );
    await listen(server, port);
    const event = await api.published('document.signed', SIGNED_DATA);
    await api.settled(event.id, 'delivered');
    expect(got.map((e) => e.id)).toEqual([event.id]);

    // Signed right, but another subscription's secret_token.
    const wrongToken = await fetch(`${url}/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signed(sub.secret) },
      body: PAYLOAD,
    });
    expect(wrongToken.status).toBe(401);
    expect((await wrongToken.json()).error.code).toBe('bad_secret_token');
  });

  it('installs from its tarball into a fresh project and verifies a real delivery from ESM and from CommonJS', async () => {
    const receiver = await startReceiver();
    servers.push(receiver);
    const { sub, request } = await deliveredTo(receiver);
    const work = mkdtempSync(join(tmpdir(), 'countersign-verify-'));
    try {
      const packageDir = resolve(import.meta.dirname, '../packages/verify');
      const packed = JSON.parse(
        execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: packageDir, encoding: 'utf8' }),
      ) as { filename: string; files: { path: string }[] }[];
      const files = packed[0]?.files.map((f) => f.path) ?? [];
      expect(files).toContain('dist/esm/index.js');
      expect(files).toContain('dist/cjs/index.js');
      expect(files).toContain('dist/cjs/index.d.ts');
      expect(files.filter((f) => f.startsWith('src/'))).toEqual([]);

      const project = join(work, 'app');
      mkdirSync(project);
      writeFileSync(join(project, 'package.json'), '{ "name": "app", "version": "1.0.0", "private": true }\n');
      execFileSync(
        'npm',
        ['install', '--no-audit', '--no-fund', '--no-package-lock', join(work, packed[0]?.filename as string)],
        { cwd: project, stdio: 'pipe' },
      );
      const delivery = JSON.stringify({ payload: request.body, headers: request.headers, secret: sub.secret });
      writeFileSync(join(project, 'delivery.json'), delivery);
      writeFileSync(
        join(project, 'esm.mjs'),
        `import { readFileSync } from 'node:fs';
import { verifyWebhook } from '@countersign/verify';
const d = JSON.parse(readFileSync('delivery.json', 'utf8'));
const event = await verifyWebhook(d);
console.log('esm', event.id);
`,
      );
      writeFileSync(
        join(project, 'cjs.cjs'),
        `const { readFileSync } = require('node:fs');
const { verifyWebhook, WebhookVerificationError } = require('@countersign/verify');
const d = JSON.parse(readFileSync('delivery.json', 'utf8'));
verifyWebhook(d).then((event) => console.log('cjs', event.id));
verifyWebhook({ ...d, payload: d.payload + ' ' }).catch((e) => console.log('cjs refused', e instanceof WebhookVerificationError, e.code));
`,
      );
      const eventId = JSON.parse(request.body).id as string;
      expect(execFileSync(process.execPath, ['esm.mjs'], { cwd: project, encoding: 'utf8' }).trim()).toBe(
        `esm ${eventId}`,
      );
      const cjs = execFileSync(process.execPath, ['cjs.cjs'], { cwd: project, encoding: 'utf8' }).trim().split('\n');
      expect(cjs.sort()).toEqual([`cjs ${eventId}`, 'cjs refused true bad_signature']);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);

  it.each(['express-receiver.mjs', 'fastify-receiver.mjs'])(
    'examples/%s, run as a process, verifies a real delivery and refuses a forged one',
    async (example) => {
      const { port, url, sub } = await subscribeAhead('shhh_its_a_secret', '/hooks');
      const child = spawn(process.execPath, [resolve(import.meta.dirname, '../examples', example)], {
        env: { ...process.env, WEBHOOK_SECRET: sub.secret, SECRET_TOKEN: 'shhh_its_a_secret', PORT: String(port) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      servers.push({ close: () => child.kill() });
      let out = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
      });
      await expect.poll(() => out, { timeout: 10_000 }).toContain(`listening on ${url}/hooks`);
      const event = await api.published('document.signed', SIGNED_DATA);
      expect((await api.settled(event.id, 'delivered')).attempts?.[0]?.status_code).toBe(200);
      await expect.poll(() => out).toContain(`verified document.signed ${event.id} for doc_88291`);
      const forged = await fetch(`${url}/hooks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signed(OTHER_SECRET) },
        body: PAYLOAD,
      });
      expect(forged.status).toBe(401);
    },
  );

  it('has no runtime dependencies', () => {
    const manifest = JSON.parse(
      readFileSync(resolve(import.meta.dirname, '../packages/verify/package.json'), 'utf8'),
    ) as { dependencies?: object; peerDependencies?: object; optionalDependencies?: object };
    expect(manifest.dependencies ?? {}).toEqual({});
    expect(manifest.peerDependencies ?? {}).toEqual({});
    expect(manifest.optionalDependencies ?? {}).toEqual({});
  });
});
