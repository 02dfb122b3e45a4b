/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The portal in a real browser: Debian's chromium (playwright-core) against a real `countersign
// serve` child process on a fresh SQLite file, delivering to a real receiver on loopback. Each
// step is what a person does: sign in with the token printed at first start, create a
// subscription, watch a delivery arrive, read its attempt, redeliver a failure, pause and resume,
// rotate the secret, watch the live chart move, open a portal link and find only its own account,
// find a document made through the API, read its signers, open its audit trail and verify its chain.
// Every screen is checked with axe-core and by keyboard at 1280 and 390 px, and photographed.
import { copyFileSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../src/domain/tokens.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect } from '../src/store/open.js';
import {
  launchBrowser,
  newPortalContext,
  type PageProblems,
  screenshot,
  seriousViolations,
  type TestBrowser,
  WIDTHS,
  watchPage,
} from './helpers/browser.js';
import { killAllServe, makeWorkspace, type ServeProcess, startServe, type Workspace } from './helpers/cli-process.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';

/** Committed screenshots (one per screen at 1280 px), shown in the README. Written when asked for. */
const DOCS_UI = resolve(import.meta.dirname, '../docs/ui');
const UPDATE_DOCS = process.env.COUNTERSIGN_UPDATE_SCREENSHOTS === '1';

const SIGNED = { document_id: 'doc_88291', signer_email: 'client@example.com', audit_url: 'https://example.com/a/1' };

describe('the portal in a real browser', () => {
  let workspace: Workspace;
  let server: ServeProcess;
  let receiver: Receiver;
  let browser: TestBrowser;
  let context: BrowserContext;
  let page: Page;
  let problems: PageProblems;
  let token: string;
  let receiverStatus = 200;
  const ids = { subscription: '', event: '', delivery: '', failedDelivery: '', document: '', tripped: '' };

  async function api(path: string, init: { method?: string; body?: unknown; token?: string } = {}) {
    const response = await fetch(`${server.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${init.token ?? token}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  async function publish(data: Record<string, unknown> = SIGNED): Promise<string> {
    const answer = await api('/v1/events', { method: 'POST', body: { event: 'document.signed', data } });
    expect(answer.status).toBe(202);
    return answer.body.id as string;
  }

  const nav = () => page.getByRole('navigation', { name: 'Main' });
  const heading = (name: string | RegExp) => page.getByRole('heading', { level: 1, name });

  beforeAll(async () => {
    receiver = await startReceiver(() => ({ status: receiverStatus, body: receiverStatus === 200 ? 'ok' : 'boom' }));
    workspace = makeWorkspace();
    server = await startServe({
      ...workspace.env,
      COUNTERSIGN_NO_DISPATCHER: '',
      COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true',
      // One attempt, no retries: a 500 fails the delivery at once, and Redeliver is the way on.
      COUNTERSIGN_RETRY_SCHEDULE: '0',
    });
    const printed = server.printedTokens();
    expect(printed).toHaveLength(1);
    token = printed[0] as string;
    browser = await launchBrowser();
    context = await newPortalContext(browser.browser);
    page = await context.newPage();
    problems = watchPage(page);
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await server?.stop();
    await killAllServe();
    await receiver?.close();
    workspace?.remove();
  });

  it('renders the interactive docs at /docs under their CSP, with nothing refused', async () => {
    const docs = await context.newPage();
    const seen = watchPage(docs);
    try {
      const response = await docs.goto(`${server.url}/docs/`);
      expect(response?.status()).toBe(200);
      expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
      // Swagger UI drew the document: its title and an operation of ours.
      await docs
        .getByRole('heading', { name: /countersign/ })
        .first()
        .waitFor();
      await docs.getByText('/v1/webhooks/subscriptions').first().waitFor();
      expect(seen.errors).toEqual([]);
      expect(seen.failedRequests).toEqual([]);
    } finally {
      await docs.close();
    }
  });

  it('serves /ui with a strict CSP and signs in with the token printed at first start', async () => {
    // The first start says where the portal is.
    expect(server.stdout()).toContain(`Sign in with it at ${server.url}/ui/,`);
    const response = await page.goto(`${server.url}/ui/`);
    expect(response?.status()).toBe(200);
    const headers = response?.headers() ?? {};
    expect(headers['content-security-policy']).toContain("script-src 'self'");
    expect(headers['content-security-policy']).toContain("frame-ancestors 'self'");
    expect(headers['content-security-policy']).not.toContain('unsafe-inline');
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['cache-control']).toBe('no-store');

    await page.getByLabel('API token').fill('cst_not_a_real_token_at_all_0000000000000000000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not accepted');

    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading('Overview').waitFor();
    for (const name of ['Overview', 'Subscriptions', 'Callback', 'Events', 'Deliveries', 'Documents']) {
      expect(await nav().getByRole('link', { name, exact: true }).count()).toBe(1);
    }
    // The token is kept for this tab only.
    const stored = await page.evaluate(() => ({
      session: Object.keys(sessionStorage),
      local: Object.keys(localStorage),
      cookies: document.cookie,
    }));
    expect(stored.session).toEqual(['countersign.session']);
    expect(stored.local).toEqual([]);
    expect(stored.cookies).toBe('');
    // A new user is told what to do next.
    await page.getByText('No deliveries in the last 24 hours.').waitFor();
  });

  it('creates a subscription and shows its signing secret once', async () => {
    await nav().getByRole('link', { name: 'Subscriptions' }).click();
    await heading('Subscriptions').waitFor();
    await page.getByText('No subscriptions yet.').waitFor();
    expect(page.url()).toBe(`${server.url}/ui/subscriptions`);

    await page.getByLabel('Target URL').fill('not a url at all');
    await page.getByLabel('Target URL').evaluate((input: HTMLInputElement) => {
      input.type = 'text'; // past the browser's own check, so the API's message shows
    });
    await page.getByRole('button', { name: 'Create subscription' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('target_url');

    await page.getByLabel('Target URL').fill(`${receiver.url}/hooks/signed`);
    await page.getByLabel('Event type').selectOption('document.signed');
    await page.getByLabel('Secret token').fill('tok_portal_test');
    await page.getByRole('button', { name: 'Create subscription' }).click();
    const secret = page.locator('.notice-secret code');
    await secret.waitFor();
    expect(await secret.textContent()).toMatch(/^whsec_/);
    expect(await page.getByRole('button', { name: 'Copy' }).count()).toBe(1);

    const row = page.getByRole('row').filter({ hasText: `${receiver.url}/hooks/signed` });
    await row.waitFor();
    expect(await row.getByText('active').count()).toBe(1);
    expect(await row.getByText('none yet').count()).toBe(1);
    const href = await row.getByRole('link').first().getAttribute('href');
    ids.subscription = (href ?? '').split('/').pop() as string;
    expect(ids.subscription).toMatch(/^sub_/);
  });

  it('shows a published event arriving as delivered, and its attempt and request', async () => {
    await nav().getByRole('link', { name: 'Deliveries' }).click();
    await heading('Deliveries').waitFor();
    ids.event = await publish();
    // The list reads itself again while a delivery is on its way: no reload.
    const delivered = page.getByRole('link', { name: /, delivered$/ });
    await delivered.first().waitFor({ timeout: 15_000 });
    await receiver.waitFor(1);

    await delivered.first().click();
    await heading('Delivery').waitFor();
    ids.delivery = page.url().split('/').pop() as string;
    expect(ids.delivery).toMatch(/^dlv_/);
    expect(await page.getByTestId('delivery-status').textContent()).toBe('delivered');
    const attempt = page.getByTestId('attempt');
    expect(await attempt.count()).toBe(1);
    expect(await attempt.getByText('200', { exact: true }).count()).toBe(1);
    // The exact request: headers as the receiver got them, and the body with secret_token masked.
    const sent = receiver.requests[0];
    const headers = page.getByLabel('Request headers');
    expect(await headers.textContent()).toContain(String(sent?.headers['webhook-signature']));
    expect(await headers.textContent()).toContain(ids.event);
    const body = JSON.parse((await page.getByLabel('Request body').textContent()) ?? '{}');
    expect(body).toMatchObject({ event: 'document.signed', data: SIGNED, secret_token: '********' });
    // Times in the viewer's zone, with the ISO time on hover.
    const time = page.locator('time').first();
    expect(await time.getAttribute('title')).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('shows a failed attempt when the receiver answers 500, and Redeliver delivers it', async () => {
    receiverStatus = 500;
    await publish({ ...SIGNED, document_id: 'doc_failing' });
    await nav().getByRole('link', { name: 'Deliveries' }).click();
    await page.getByLabel('Status', { exact: true }).selectOption('failed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.url()).toContain('status=failed');
    const failed = page.getByRole('link', { name: /, failed$/ });
    await expect
      .poll(
        async () => {
          if ((await failed.count()) === 0) await page.reload();
          return failed.count();
        },
        { timeout: 15_000, interval: 500 },
      )
      .toBe(1);
    await failed.click();
    await heading('Delivery').waitFor();
    ids.failedDelivery = page.url().split('/').pop() as string;
    expect(await page.getByTestId('delivery-status').textContent()).toBe('failed');
    expect(await page.getByTestId('attempt').getByText('500', { exact: true }).count()).toBe(1);
    await page.getByTestId('attempt').locator('summary').click();
    expect(await page.getByLabel('Answer excerpt').textContent()).toBe('boom');

    receiverStatus = 200;
    await page.getByRole('button', { name: 'Redeliver' }).click();
    await expect.poll(() => page.getByTestId('delivery-status').textContent(), { timeout: 15_000 }).toBe('delivered');
    await expect.poll(() => page.getByTestId('attempt').count()).toBe(2);
    expect(await page.getByTestId('attempt').first().getByText('manual').count()).toBe(1);
    // Back and forward step through the screens and the filter.
    await page.goBack();
    await heading('Deliveries').waitFor();
    expect(page.url()).toContain('status=failed');
    await page.goForward();
    await heading('Delivery').waitFor();
  });

  it('pauses and resumes a subscription, and rotates its secret', async () => {
    await page.goto(`${server.url}/ui/subscriptions/${ids.subscription}`);
    await heading('Subscription').waitFor();
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    expect(await page.locator('.facts .status').first().textContent()).toBe('paused');
    expect((await api(`/v1/webhooks/subscriptions/${ids.subscription}`)).body).toMatchObject({
      subscriptions: [{ status: 'paused' }],
    });
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('button', { name: 'Pause' }).waitFor();
    expect(await page.locator('.facts .status').first().textContent()).toBe('active');

    await page.getByRole('button', { name: 'Rotate secret' }).click();
    const secret = page.locator('.notice-secret code');
    await secret.waitFor();
    const rotated = (await secret.textContent()) ?? '';
    expect(rotated).toMatch(/^whsec_/);
    await page.getByText('The previous secret keeps signing').waitFor();

    // The new secret signs the next webhook (a test event, sent from this screen).
    const before = receiver.requests.length;
    await page.getByRole('button', { name: 'Send test event' }).click();
    await page.getByText(/A test document\.signed event was queued/).waitFor();
    const [test] = (await receiver.waitFor(before + 1)).slice(before);
    expect(String(test?.headers['webhook-signature']).split(' ')).toHaveLength(2);
  });

  it('sets, refuses and lifts a rate limit and ordering, and creates an operational-events subscription', async () => {
    await page.goto(`${server.url}/ui/subscriptions/${ids.subscription}`);
    await heading('Subscription').waitFor();
    const facts = page.locator('.facts');
    expect(await facts.textContent()).toContain('Rate limitnone');

    await page.getByLabel('Rate limit (a second, empty for none)').fill('0');
    await page.getByLabel('Rate limit (a second, empty for none)').evaluate((input: HTMLInputElement) => {
      input.removeAttribute('min'); // past the browser's own check, so the API's message shows
    });
    await page.getByRole('button', { name: 'Save controls' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('rate_limit_per_second');

    await page.getByLabel('Rate limit (a second, empty for none)').fill('25');
    await page.getByLabel('Ordering', { exact: true }).selectOption('document');
    await page.getByRole('button', { name: 'Save controls' }).click();
    await page.getByText('Saved: at most 25 a second, ordered by document.').waitFor();
    await expect.poll(() => facts.textContent()).toContain('Rate limit25 a second');
    expect(await facts.textContent()).toContain('Orderingby document, in publish order');
    expect((await api(`/v1/webhooks/subscriptions/${ids.subscription}`)).body).toMatchObject({
      subscriptions: [{ rate_limit_per_second: 25, ordering: 'document' }],
    });

    await page.getByLabel('Rate limit (a second, empty for none)').fill('');
    await page.getByLabel('Ordering', { exact: true }).selectOption('none');
    await page.getByRole('button', { name: 'Save controls' }).click();
    await page.getByText('Saved: no rate limit, no ordering.').waitFor();
    expect((await api(`/v1/webhooks/subscriptions/${ids.subscription}`)).body).toMatchObject({
      subscriptions: [{ rate_limit_per_second: null, ordering: 'none' }],
    });

    await page.goto(`${server.url}/ui/subscriptions`);
    await heading('Subscriptions').waitFor();
    await page.getByLabel('Target URL').fill(`${receiver.url}/hooks/ops`);
    await page.getByLabel('Event type').selectOption('all-operational');
    await page.getByLabel('Rate limit', { exact: true }).fill('5');
    await page.getByRole('button', { name: 'Create subscription' }).click();
    await page.locator('.notice-secret code').waitFor();
    const row = page.getByRole('row').filter({ hasText: `${receiver.url}/hooks/ops` });
    await row.waitFor();
    expect(await row.textContent()).toContain('subscription.disabled');
    const opsId = ((await row.getByRole('link').first().getAttribute('href')) ?? '').split('/').pop() as string;
    expect((await api(`/v1/webhooks/subscriptions/${opsId}`)).body).toMatchObject({
      subscriptions: [
        {
          event_types: [
            'subscription.disabled',
            'delivery.failed',
            'endpoint.circuit_opened',
            'endpoint.circuit_closed',
          ],
          rate_limit_per_second: 5,
          ordering: 'none',
        },
      ],
    });
    await page.getByRole('button', { name: 'Done' }).click();
  });

  it('replays a subscription’s failed deliveries in a time window', async () => {
    const failedOfSubscription = async () =>
      (await api(`/v1/deliveries?status=failed&subscription_id=${ids.subscription}`)).body.deliveries;
    receiverStatus = 500;
    await publish({ ...SIGNED, document_id: 'doc_replayed' });
    await expect.poll(failedOfSubscription, { timeout: 15_000 }).toHaveLength(1);
    receiverStatus = 200;
    await page.goto(`${server.url}/ui/subscriptions/${ids.subscription}`);
    await heading('Subscription').waitFor();
    // The window's default (the last 24 hours) holds the failure.
    await page.getByRole('button', { name: 'Replay' }).click();
    await page.getByText('1 failed delivery was queued again.').waitFor();
    await expect.poll(failedOfSubscription, { timeout: 15_000 }).toHaveLength(0);
    // A window that holds nothing says so.
    await page.getByLabel('Failed deliveries created from').fill('2020-01-01T00:00');
    await page.getByLabel('until').fill('2020-01-02T00:00');
    await page.getByRole('button', { name: 'Replay' }).click();
    await page.getByText('No failed deliveries in that window.').waitFor();
  });

  it('moves the live chart after publishes, without a reload', async () => {
    await nav().getByRole('link', { name: 'Overview' }).click();
    await heading('Overview').waitFor();
    const summary = page.getByTestId('attempts-summary');
    await summary.waitFor();
    const deliveredNow = async () => Number(/^(\d+) delivered/.exec((await summary.textContent()) ?? '')?.[1]);
    const before = await deliveredNow();
    expect(before).toBeGreaterThanOrEqual(2);
    expect(await page.locator('[data-testid=attempts-chart] canvas').count()).toBe(1);
    await Promise.all([publish(), publish(), publish()]);
    await expect.poll(deliveredNow, { timeout: 20_000, interval: 500 }).toBeGreaterThanOrEqual(before + 3);
    expect(await page.getByTestId('count-delivered').textContent()).not.toBe('0');
  });

  it('a portal link signs in as its own account only, and leaves the address bar', async () => {
    const globex = await api('/v1/portal/sessions', { method: 'POST', body: {} });
    expect(globex.status).toBe(201);
    // Another account, with a subscription of its own.
    const store = await openStore(openDialect({ kind: 'sqlite', path: workspace.env.DATABASE_URL as string }));
    let otherToken: string;
    let expiredLink: string;
    try {
      const other = await store.ensureAccount('globex', Date.now());
      const issued = issueToken();
      await store.createToken({
        accountId: other.id,
        lookup: issued.lookup,
        hash: issued.hash,
        scopes: ['admin'],
        expiresAt: null,
        now: Date.now(),
      });
      otherToken = issued.token;
      const expired = issueToken();
      const acme = (await api('/v1/me')).body.account as { id: string };
      await store.createToken({
        accountId: acme.id,
        lookup: expired.lookup,
        hash: expired.hash,
        scopes: ['read', 'write'],
        kind: 'portal',
        expiresAt: Date.now() - 1000,
        now: Date.now() - 3_600_000,
      });
      expiredLink = `${server.url}/ui/#token=${expired.token}`;
    } finally {
      await store.close();
    }
    const otherSub = await api('/v1/webhooks/subscriptions', {
      method: 'POST',
      token: otherToken,
      body: { target_url: `${receiver.url}/globex`, event_type: 'document.sent' },
    });
    expect(otherSub.status).toBe(200);
    const otherSubId = (otherSub.body.subscriptions as { id: string }[])[0]?.id as string;

    const link = await api('/v1/portal/sessions', { method: 'POST', body: { expires_in_seconds: 600 } });
    expect(link.status).toBe(201);
    const url = link.body.url as string;
    expect(url).toMatch(/\/ui\/#token=cst_/);

    const portal = await newPortalContext(browser.browser);
    try {
      const customer = await portal.newPage();
      const customerProblems = watchPage(customer);
      await customer.goto(url);
      await customer.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      expect(customer.url()).toBe(`${server.url}/ui/`);
      expect(await customer.getByText('portal link').count()).toBe(1);
      await customer.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Subscriptions' }).click();
      await customer.getByRole('link', { name: `${receiver.url}/hooks/signed` }).waitFor();
      expect(await customer.getByText(`${receiver.url}/globex`).count()).toBe(0);
      await customer.goto(`${server.url}/ui/subscriptions/${otherSubId}`);
      await customer.getByRole('heading', { level: 1, name: 'Subscription not found' }).waitFor();
      // Still signed in after that reload: the session lives in this tab's sessionStorage.
      await customer.getByRole('button', { name: 'Sign out' }).click();
      await customer.getByLabel('API token').waitFor();
      expect(await customer.evaluate(() => Object.keys(sessionStorage))).toEqual([]);
      expect(customerProblems.errors.filter((e) => !e.includes('404'))).toEqual([]);

      // An expired link is refused, in plain words.
      const late = await portal.newPage();
      await late.goto(expiredLink);
      await late.getByRole('alert').waitFor();
      expect(await late.getByRole('alert').textContent()).toContain('This portal link has expired');
      expect(late.url()).toBe(`${server.url}/ui/`);
      expect(await late.getByLabel('API token').count()).toBe(1);
    } finally {
      await portal.close();
    }
  });

  it('sets and disables the account callback, with its credentials masked', async () => {
    await nav().getByRole('link', { name: 'Callback' }).click();
    await heading('Callback').waitFor();
    await page.getByText('No callback is set.').waitFor();
    await page.getByLabel('Callback URL').fill(`${receiver.url}/conga`);
    await page.getByLabel('Authentication').selectOption('Bearer');
    await page.getByLabel('Bearer token').fill('very-secret-bearer');
    await page.getByRole('button', { name: 'Save callback' }).click();
    await page.getByText('Callback saved.').waitFor();
    const facts = page.locator('.facts');
    await expect.poll(() => facts.textContent()).toContain('********');
    expect(await facts.textContent()).not.toContain('very-secret-bearer');
    await page.getByRole('button', { name: 'Disable callback' }).click();
    await page.getByText('No callback is set.').waitFor();
  });

  it('deletes a subscription only after a confirmation', async () => {
    const made = await api('/v1/webhooks/subscriptions', {
      method: 'POST',
      body: { target_url: `${receiver.url}/to-delete`, event_type: 'document.declined' },
    });
    const id = (made.body.subscriptions as { id: string }[])[0]?.id as string;
    await page.goto(`${server.url}/ui/subscriptions/${id}`);
    await heading('Subscription').waitFor();
    await page.getByRole('textbox', { name: 'Target URL' }).fill(`${receiver.url}/moved`);
    await page.getByRole('button', { name: 'Save target URL' }).click();
    await page.getByText('Target URL saved.').waitFor();
    await expect.poll(() => page.locator('.facts dd.url').textContent()).toBe(`${receiver.url}/moved`);
    await page.getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete this subscription?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await api(`/v1/webhooks/subscriptions/${id}`)).status).toBe(200);
    await page.getByRole('button', { name: 'Delete' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await heading('Subscriptions').waitFor();
    expect((await api(`/v1/webhooks/subscriptions/${id}`)).status).toBe(404);
  });

  it('finds a document made through the API, shows its signers, opens its audit trail and verifies its chain', async () => {
    const made = await api('/v1/documents', {
      method: 'POST',
      body: {
        title: 'Master services agreement',
        external_id: 'msa-7',
        signers: [{ email: 'ana@example.com', name: 'Ana Lima' }, { email: 'bo@example.com' }],
      },
    });
    expect(made.status).toBe(201);
    const doc = made.body as { id: string; audit_url: string; signers: { id: string }[] };
    ids.document = doc.id;
    expect((await api(`/v1/documents/${doc.id}/send`, { method: 'POST' })).status).toBe(200);
    const signed = await api(`/v1/documents/${doc.id}/signers/${doc.signers[0]?.id}/sign`, { method: 'POST' });
    expect(signed.status).toBe(200);
    // A draft beside it, for the filter.
    const draft = await api('/v1/documents', {
      method: 'POST',
      body: { title: 'Draft NDA', signers: [{ email: 'cy@example.com' }] },
    });
    expect(draft.status).toBe(201);

    await nav().getByRole('link', { name: 'Documents' }).click();
    await heading('Documents').waitFor();
    expect(page.url()).toBe(`${server.url}/ui/documents`);
    const row = page.getByRole('row').filter({ hasText: 'Master services agreement' });
    await row.waitFor();
    expect(await row.textContent()).toMatch(/Master services agreementsent1 of 2msa-7/);
    expect(await page.getByRole('row').filter({ hasText: 'Draft NDA' }).count()).toBe(1);

    await page.getByLabel('Status', { exact: true }).selectOption('draft');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.url()).toBe(`${server.url}/ui/documents?status=draft`);
    await expect.poll(() => row.count()).toBe(0);
    expect(await page.getByRole('row').filter({ hasText: 'Draft NDA' }).count()).toBe(1);
    await page.getByLabel('Status', { exact: true }).selectOption('completed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('No completed documents.').waitFor();
    await page.getByRole('button', { name: 'Clear' }).click();
    await row.waitFor();

    await row.getByRole('link', { name: 'Master services agreement' }).click();
    await heading('Master services agreement').waitFor();
    expect(page.url()).toBe(`${server.url}/ui/documents/${doc.id}`);
    const facts = page.locator('.facts');
    expect(await facts.textContent()).toContain('Statussent');
    expect(await facts.textContent()).toContain('External idmsa-7');
    const signers = page.getByTestId('signer');
    expect(await signers.count()).toBe(2);
    expect(await signers.nth(0).textContent()).toMatch(/^Ana Limaana@example\.comsigned.+—$/);
    expect(await signers.nth(1).textContent()).toBe('bo@example.compending——');
    // The one subscription that takes document.signed got the signature's webhook.
    await page
      .getByRole('region', { name: 'Webhooks' })
      .getByRole('link', { name: /, delivered$/ })
      .waitFor({ timeout: 15_000 });

    await page.getByRole('button', { name: 'Verify chain' }).click();
    await expect
      .poll(() => page.getByTestId('chain-verdict').textContent())
      .toBe('The chain verifies: 3 entries, each hashed over the one before.');
    await screenshot(page, 'document-verified-1280');

    // The audit trail opens in a tab of its own, without the portal's token.
    const link = page.getByRole('link', { name: 'Audit trail (opens in a new tab)' });
    expect(await link.getAttribute('href')).toBe(doc.audit_url);
    const [trail] = await Promise.all([context.waitForEvent('page'), link.click()]);
    try {
      await trail.getByRole('heading', { level: 1, name: 'Audit trail' }).waitFor();
      expect(trail.url()).toBe(doc.audit_url);
      expect(await trail.getByRole('status').textContent()).toContain('The chain verifies: 3 entries');
      expect(await trail.getByRole('row').count()).toBe(4);
      await screenshot(trail, 'audit-trail-1280');
    } finally {
      await trail.close();
    }
  });

  it('shows an endpoint’s open circuit, its last fault and next probe, and probes it now', async () => {
    const down = await startReceiver(() => ({ status: 503, body: 'down for maintenance' }));
    try {
      const made = await api('/v1/webhooks/subscriptions', {
        method: 'POST',
        body: { target_url: `${down.url}/hooks`, event_type: 'document.declined' },
      });
      const id = (made.body.subscriptions as { id: string }[])[0]?.id as string;
      ids.tripped = id;
      const circuit = async () =>
        ((await api(`/v1/webhooks/subscriptions/${id}`)).body.subscriptions as { circuit: { state: string } }[])[0]
          ?.circuit as { state: string; consecutive_failures: number };
      // Ten faults in a row (the default threshold): test events go to this subscription only.
      for (let i = 0; i < 10; i++) {
        const sent = await api(`/v1/webhooks/subscriptions/${id}/test`, { method: 'POST', body: {} });
        expect(sent.status).toBe(202);
        await expect.poll(() => down.requests.length, { timeout: 15_000 }).toBe(i + 1);
      }
      await expect.poll(async () => (await circuit()).state, { timeout: 15_000 }).toBe('open');

      await page.goto(`${server.url}/ui/subscriptions/${id}`);
      await heading('Subscription').waitFor();
      const facts = page.getByTestId('circuit');
      expect(await facts.locator('.status').textContent()).toBe('circuit open');
      expect(await facts.textContent()).toContain('HTTP 503');
      expect(await facts.locator('time').count()).toBe(1);
      await nav().getByRole('link', { name: 'Subscriptions' }).click();
      await heading('Subscriptions').waitFor();
      // The heading is drawn before the list has loaded: wait for the row, not a count of what is there yet.
      await expect
        .poll(() =>
          page
            .getByRole('row')
            .filter({ hasText: `${down.url}/hooks` })
            .locator('.status-circuit-open')
            .count(),
        )
        .toBe(1);

      // An event published while the circuit is open waits, postponed, and goes as the probe.
      const declined = await api('/v1/events', {
        method: 'POST',
        body: { event: 'document.declined', data: { ...SIGNED, reason: 'wrong address' } },
      });
      expect(declined.status).toBe(202);
      await expect
        .poll(async () => (await api(`/v1/deliveries?subscription_id=${id}&status=postponed`)).body.deliveries, {
          timeout: 15_000,
        })
        .toHaveLength(1);
      await page.goto(`${server.url}/ui/subscriptions/${id}`);
      await heading('Subscription').waitFor();
      await page.getByRole('button', { name: 'Probe now' }).click();
      await page.getByText('Probing now').waitFor();
      // The probe went at once and met the same 503: the circuit counted it and stays open.
      await expect.poll(() => down.requests.length, { timeout: 15_000 }).toBe(11);
      await expect.poll(async () => (await circuit()).consecutive_failures, { timeout: 15_000 }).toBe(11);
      expect((await circuit()).state).toBe('open');
    } finally {
      await down.close();
    }
  });

  it('passes axe, reaches every control by keyboard and fits at 1280 and 390 px on every screen', async () => {
    const screens: [string, string, string | RegExp][] = [
      ['overview', '/ui/', 'Overview'],
      ['subscriptions', '/ui/subscriptions', 'Subscriptions'],
      ['subscription', `/ui/subscriptions/${ids.subscription}`, 'Subscription'],
      ['subscription-circuit-open', `/ui/subscriptions/${ids.tripped}`, 'Subscription'],
      ['callback', '/ui/callback', 'Callback'],
      ['events', '/ui/events', 'Events'],
      ['event', `/ui/events/${ids.event}`, /^Event/],
      ['deliveries', '/ui/deliveries', 'Deliveries'],
      ['delivery', `/ui/deliveries/${ids.failedDelivery}`, 'Delivery'],
      ['documents', '/ui/documents', 'Documents'],
      ['document', `/ui/documents/${ids.document}`, 'Master services agreement'],
    ];
    // A callback set and signed, so its screen shows what an operator usually sees.
    const registered = await api('/api/sign/v1/callback/register', {
      method: 'PUT',
      body: { callbackUrl: `${receiver.url}/conga`, authType: 'Basic', username: 'conga', password: 'hunter22' },
    });
    expect(registered.status).toBe(200);
    expect((await api('/api/sign/v1/callback/rotate-secret', { method: 'POST', body: {} })).status).toBe(200);
    const report: string[] = [];
    for (const [width, viewport] of Object.entries(WIDTHS)) {
      await page.setViewportSize(viewport);
      for (const [name, path, title] of screens) {
        await page.goto(`${server.url}${path}`);
        await heading(title).waitFor();
        await page.waitForLoadState('networkidle');
        for (const v of await seriousViolations(page))
          report.push(`${name} @${width}: ${v.id} ${v.targets.join(', ')}`);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        if (overflow > 1) report.push(`${name} @${width}: ${overflow}px wider than the window`);
        const shot = await screenshot(page, `${name}-${viewport.width}`);
        if (UPDATE_DOCS && width === 'wide') {
          mkdirSync(DOCS_UI, { recursive: true });
          copyFileSync(shot, resolve(DOCS_UI, `${name}.png`));
        }
        for (const missed of await unreachableByKeyboard(page))
          report.push(`${name} @${width}: Tab never reaches ${missed}`);
      }
    }
    // The sign-in screen, in a context of its own.
    const fresh = await newPortalContext(browser.browser);
    try {
      const signIn = await fresh.newPage();
      for (const [width, viewport] of Object.entries(WIDTHS)) {
        await signIn.setViewportSize(viewport);
        await signIn.goto(`${server.url}/ui/`);
        await signIn
          .getByLabel('API token')
          .waitFor({ timeout: 10_000 })
          .catch(async (err) => {
            await screenshot(signIn, 'sign-in-failure');
            throw new Error(`${err}\n${await signIn.content()}\n${server.stderr()}`);
          });
        for (const v of await seriousViolations(signIn))
          report.push(`sign-in @${width}: ${v.id} ${v.targets.join(', ')}`);
        const shot = await screenshot(signIn, `sign-in-${viewport.width}`);
        if (UPDATE_DOCS && width === 'wide') copyFileSync(shot, resolve(DOCS_UI, 'sign-in.png'));
      }
    } finally {
      await fresh.close();
    }
    expect(report).toEqual([]);
    // Nothing the pages did was refused by the CSP or threw, and the API refused only what the
    // steps above meant it to: the bad token, the bad URL, the rate limit of 0.
    expect(problems.errors.filter((e) => !e.startsWith('Failed to load resource'))).toEqual([]);
    expect(problems.failedRequests).toEqual([
      '401 GET /v1/me',
      '400 POST /v1/webhooks/subscriptions',
      `400 PATCH /v1/webhooks/subscriptions/${ids.subscription}`,
    ]);
  }, 120_000);
});

/** Presses Tab through the page and names each visible control it never focused. */
async function unreachableByKeyboard(page: Page): Promise<string[]> {
  const count = await page.evaluate(() => {
    const controls = [
      ...document.querySelectorAll<HTMLElement>('a[href], button, input, select, textarea, summary, [tabindex="0"]'),
    ].filter((el) => el.checkVisibility() && !(el as HTMLButtonElement).disabled);
    controls.forEach((el, i) => {
      el.dataset.kb = String(i);
    });
    (document.activeElement as HTMLElement | null)?.blur();
    return controls.length;
  });
  const reached = new Set<string>();
  for (let i = 0; i < count * 2 + 10 && reached.size < count; i++) {
    await page.keyboard.press('Tab');
    const kb = await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.kb);
    if (kb !== undefined) reached.add(kb);
  }
  return page.evaluate(
    (seen) =>
      [...document.querySelectorAll<HTMLElement>('[data-kb]')]
        .filter((el) => !seen.includes(el.dataset.kb as string))
        .map((el) => `${el.tagName.toLowerCase()} "${(el.textContent ?? '').trim().slice(0, 40) || el.id}"`),
    [...reached],
  );
}
