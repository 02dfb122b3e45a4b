// The seed documents' example requests, sent byte for byte with the real curl binary to a real
// `countersign serve` process, answered as the seeds document. The server runs without the
// dispatcher, so nothing is ever sent to the example hosts (your.domain, your-app.com).
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllServe, makeWorkspace, type ServeProcess, startServe, type Workspace } from './helpers/cli-process.js';

// The request payloads exactly as the seeds write them, whitespace included.
const SEED_CALLBACK_BASIC =
  '{ "callbackUrl":"https://your.domain/your.callback.listener.endpoint", "authType": "Basic", "username": "your.username", "password": "your.password" }';
const SEED_CALLBACK_BEARER =
  '{ "callbackUrl":"https://your.domain/your.callback.listener.endpoint", "authType": "Bearer", "bearerToken": "your.bearer.token" }';
const SEED_CALLBACK_NONE =
  '{ "callbackUrl":"https://your.domain/your.callback.listener.endpoint", "authType": "None" }';
const SEED_SUBSCRIPTION = `{
  "target_url": "https://your-app.com/webhooks/conga",
  "event_type": "document.signed",
  "secret_token": "shhh_its_a_secret"
}`;

interface CurlResponse {
  status: number;
  contentType: string;
  body: string;
}

/** One request with the real curl binary; the status and content type come from --write-out. */
function curl(args: string[]): Promise<CurlResponse> {
  const marker = '\n--countersign-curl--\n';
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      [
        '--silent',
        '--show-error',
        '--noproxy',
        '*',
        '--max-time',
        '30',
        '--write-out',
        `${marker}%{http_code} %{content_type}`,
        ...args,
      ],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`curl failed: ${err.message}\n${stderr}`));
        const at = stdout.lastIndexOf(marker);
        const [status = '', contentType = ''] = stdout.slice(at + marker.length).split(' ');
        resolve({ status: Number(status), contentType, body: stdout.slice(0, at) });
      },
    );
  });
}

describe('the seed examples, sent with curl to a running countersign', () => {
  let workspace: Workspace;
  let server: ServeProcess;
  let token: string;

  beforeAll(async () => {
    workspace = makeWorkspace();
    server = await startServe(workspace.env);
    // The guarantee that nothing reaches the example hosts: this server has no dispatcher.
    expect(server.stdout()).toContain('"dispatcher":false');
    const printed = server.printedTokens();
    expect(printed).toHaveLength(1);
    token = printed[0] as string;
  });

  afterAll(async () => {
    await server?.stop();
    await killAllServe();
    workspace?.remove();
  });

  /** The seed's headers, plus our bearer token. */
  function seedHeaders(withToken = true): string[] {
    return [
      '-H',
      'Accept: application/json',
      '-H',
      'Content-Type: application/json',
      ...(withToken ? ['-H', `Authorization: Bearer ${token}`] : []),
    ];
  }

  function register(payload: string): Promise<CurlResponse> {
    return curl(['-X', 'PUT', `${server.url}/api/sign/v1/callback/register`, ...seedHeaders(), '--data-raw', payload]);
  }

  function subscribe(payload: string, withToken = true): Promise<CurlResponse> {
    return curl([
      '-X',
      'POST',
      `${server.url}/v1/webhooks/subscriptions`,
      ...seedHeaders(withToken),
      '--data-raw',
      payload,
    ]);
  }

  describe('callback notifications', () => {
    it.each([
      ['Basic Authentication', SEED_CALLBACK_BASIC],
      ['Bearer Token Authentication', SEED_CALLBACK_BEARER],
      ['No Authentication', SEED_CALLBACK_NONE],
    ])('answers the %s example with 200 and the documented response payload', async (_name, payload) => {
      const res = await register(payload);
      expect(res.status, res.body).toBe(200);
      expect(res.contentType).toMatch(/^application\/json/);
      // The documented response payload is the request payload.
      expect(JSON.parse(res.body)).toStrictEqual(JSON.parse(payload));
    });

    it('disables the callback when callbackUrl is an empty string', async () => {
      const disable = '{ "callbackUrl":"", "authType": "None" }';
      const res = await register(disable);
      expect(res.status, res.body).toBe(200);
      expect(JSON.parse(res.body)).toStrictEqual({ callbackUrl: '', authType: 'None' });
      const shown = await curl([`${server.url}/api/sign/v1/callback`, '-H', `Authorization: Bearer ${token}`]);
      expect(shown.status).toBe(200);
      expect(JSON.parse(shown.body)).toMatchObject({ callbackUrl: '', enabled: false });
    });

    it('masks the Basic password when the callback is read back', async () => {
      expect((await register(SEED_CALLBACK_BASIC)).status).toBe(200);
      const shown = await curl([`${server.url}/api/sign/v1/callback`, '-H', `Authorization: Bearer ${token}`]);
      expect(shown.status).toBe(200);
      expect(shown.body).not.toContain('your.password');
      expect(JSON.parse(shown.body)).toMatchObject({ authType: 'Basic', username: 'your.username', enabled: true });
    });

    it('answers 400 when a field the authType needs is missing', async () => {
      const res = await register(
        '{ "callbackUrl":"https://your.domain/your.callback.listener.endpoint", "authType": "Basic", "username": "your.username" }',
      );
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body).error.message).toContain('password');
    });
  });

  describe('webhook subscriptions', () => {
    it('answers the example request with 200 and the documented response shape', async () => {
      const res = await subscribe(SEED_SUBSCRIPTION);
      expect(res.status, res.body).toBe(200);
      expect(res.contentType).toMatch(/^application\/json/);
      expect(res.body).not.toContain('shhh_its_a_secret');
      const body = JSON.parse(res.body);
      expect(Object.keys(body)).toEqual(['subscriptions']);
      expect(body.subscriptions).toHaveLength(1);
      expect(body.subscriptions[0]).toMatchObject({
        id: expect.stringMatching(/^sub_/),
        target_url: 'https://your-app.com/webhooks/conga',
        status: 'active',
        created_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/),
      });
    });

    it('answers 409 to the same example sent again', async () => {
      // 200 if this test runs alone, 409 if the example above already created it.
      expect([200, 409]).toContain((await subscribe(SEED_SUBSCRIPTION)).status);
      const res = await subscribe(SEED_SUBSCRIPTION);
      expect(res.status, res.body).toBe(409);
      expect(JSON.parse(res.body).error.code).toBe('subscription_exists');
    });

    it('answers 400 naming target_url when it is missing', async () => {
      const res = await subscribe('{ "event_type": "document.signed" }');
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body).error.message).toContain('target_url');
    });

    it('answers 400 naming target_url when it is not https', async () => {
      const res = await subscribe(
        '{ "target_url": "http://your-app.com/webhooks/conga", "event_type": "document.sent" }',
      );
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body).error.message).toContain('target_url');
    });

    it('answers 401 without an API token', async () => {
      const res = await subscribe(SEED_SUBSCRIPTION, false);
      expect(res.status).toBe(401);
      const body = JSON.parse(res.body);
      expect(body.error.code).toBe('unauthorized');
      expect(body.error.message).toContain('invalid or expired');
    });

    it('answers 401 to a token that was never issued', async () => {
      const res = await curl([
        '-X',
        'POST',
        `${server.url}/v1/webhooks/subscriptions`,
        '-H',
        'Content-Type: application/json',
        '-H',
        `Authorization: Bearer cst_${'A'.repeat(43)}`,
        '--data-raw',
        SEED_SUBSCRIPTION,
      ]);
      expect(res.status).toBe(401);
    });
  });
});
