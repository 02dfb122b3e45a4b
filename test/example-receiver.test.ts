// The README's example receiver (examples/receiver.mjs), run as a real process against a real
// dispatcher: it accepts what countersign signs and refuses a wrong secret or secret_token.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from './helpers/cli-process.js';
import { sqliteDialect } from './helpers/databases.js';
import { startTestService, type TestService } from './helpers/service.js';

const RECEIVER = join(import.meta.dirname, '..', 'examples', 'receiver.mjs');
const DATA = {
  document_id: 'doc_88291',
  signer_email: 'client@example.com',
  audit_url: 'https://congasign.com/audit/88291',
};

async function startExample(env: Record<string, string>): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(process.execPath, [RECEIVER], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  await expect.poll(() => lines.includes('receiver listening'), { timeout: 10_000 }).toBe(true);
  return { child, lines };
}

describe('the example receiver', () => {
  let service: TestService | undefined;
  let child: ChildProcess | undefined;
  afterEach(async () => {
    child?.kill();
    await service?.close();
  });

  /** A subscription (with the seed's secret_token) to the example on `port`; returns its signing secret. */
  async function subscribe(port: number): Promise<string> {
    service = await startTestService(sqliteDialect, { dispatcher: { retrySchedule: [0, 60_000] } });
    const created = await service.request({
      method: 'POST',
      url: '/v1/webhooks/subscriptions',
      payload: {
        target_url: `http://127.0.0.1:${port}/hooks`,
        event_type: 'document.signed',
        secret_token: 'shhh_its_a_secret',
      },
    });
    return created.json().subscriptions[0].signing_secret;
  }

  async function publish(): Promise<string> {
    const res = await (service as TestService).request({
      method: 'POST',
      url: '/v1/events',
      payload: { event: 'document.signed', data: DATA },
    });
    return res.json().id;
  }

  async function lastAttempt(eventId: string) {
    const list = await (service as TestService).request({ method: 'GET', url: `/v1/deliveries?event_id=${eventId}` });
    return list.json().deliveries[0]?.last_attempt as { status_code: number } | null | undefined;
  }

  /** The example on a free port, subscribed to with the seed's secret_token; `wrong` overrides its settings. */
  async function exampleReceiving(wrong: Record<string, string> = {}) {
    const port = await freePort();
    const secret = await subscribe(port);
    const example = await startExample({
      WEBHOOK_SECRET: secret,
      SECRET_TOKEN: 'shhh_its_a_secret',
      PORT: String(port),
      ...wrong,
    });
    child = example.child;
    return example;
  }

  it('verifies the signature and secret_token of a real delivery and answers 204', async () => {
    const example = await exampleReceiving();
    const eventId = await publish();
    await expect.poll(() => lastAttempt(eventId), { timeout: 10_000 }).toMatchObject({ status_code: 204 });
    expect(example.lines).toContain(`verified document.signed ${eventId} ${JSON.stringify(DATA)}`);
  });

  it.each([
    ['the signing secret', { WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, 'rejected: bad signature'],
    ['the secret_token', { SECRET_TOKEN: 'not_the_token' }, 'rejected: secret_token mismatch'],
  ])('answers 401 when %s does not match', async (_what, wrong, message) => {
    const example = await exampleReceiving(wrong);
    const eventId = await publish();
    await expect.poll(() => lastAttempt(eventId), { timeout: 10_000 }).toMatchObject({ status_code: 401 });
    expect(example.lines).toContain(message);
  });
});
