/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The portal in a real browser: Debian's chromium (playwright-core) against a real `countersign
// serve` child process on a fresh SQLite file, delivering to real receivers on loopback. Each
// test is what a person does: sign in with the token printed at first start, create a
// subscription, watch a delivery arrive, read its attempt, redeliver a failure, pause and resume,
// rotate the secret, watch the live chart move, open a portal link and find only its own account,
// find a document made through the API, read its signers, open its audit trail and verify its chain.
// Every screen is checked with axe-core and by keyboard at 1280 and 390 px, and photographed.
//
// Each test stands alone, in any order and run by itself (-t): the server and the browser process
// are shared, but every test makes its own account and token, its own receivers and data through
// the API, and its own browser context and page, closed when it ends. The first start's account is
// used by the sign-in test only.
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
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
import { type Receiver, type Responder, startReceiver } from './helpers/receiver.js';
import { addToken } from './helpers/tokens.js';

/** Committed screenshots (one per screen at 1280 px), shown in the README. Written when asked for. */
const DOCS_UI = resolve(import.meta.dirname, '../docs/ui');
const UPDATE_DOCS = process.env.COUNTERSIGN_UPDATE_SCREENSHOTS === '1';

const SIGNED = { document_id: 'doc_88291', signer_email: 'client@example.com', audit_url: 'https://example.com/a/1' };

/** What every wait gives up after unless it says otherwise (a page's, a locator's, expect.poll's). */
const WAIT_MS = 10_000;

interface ApiInit {
  method?: string;
  body?: unknown;
}

interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** An account of one test's own, and its API token (every scope, as the first start gives). */
interface Tenant {
  accountId: string;
  token: string;
  api(path: string, init?: ApiInit): Promise<ApiAnswer>;
  /** Publishes a document.signed event and returns its id. */
  publish(data?: Record<string, unknown>): Promise<string>;
}

/** One test's own browser context and page, signed in or not. */
interface Portal {
  context: BrowserContext;
  page: Page;
  /** What the page met: errors and refused API calls. */
  problems: PageProblems;
  nav(): Locator;
  heading(name: string | RegExp): Locator;
}

interface Circuit {
  state: string;
  consecutive_failures: number;
}

/** A receiver's answer: 200 "ok", or this status with "boom". */
const answering =
  (status: number): Responder =>
  () => ({ status, body: status === 200 ? 'ok' : 'boom' });

describe('the portal in a real browser', () => {
  let workspace: Workspace;
  let server: ServeProcess;
  let browser: TestBrowser;

  beforeAll(async () => {
    // expect.poll's own default is one second: ten, like every other wait here.
    vi.setConfig({ expect: { poll: { timeout: WAIT_MS } } });
    workspace = makeWorkspace();
    server = await startServe({
      ...workspace.env,
      COUNTERSIGN_NO_DISPATCHER: '',
      COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true',
      // One attempt, no retries: a 500 fails the delivery at once, and Redeliver is the way on.
      COUNTERSIGN_RETRY_SCHEDULE: '0',
    });
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await killAllServe();
    workspace?.remove();
    vi.resetConfig();
  });

  // --- setup helpers: each makes what one test needs, and undoes what outlives it ---------------

  async function call(token: string, path: string, init: ApiInit = {}): Promise<ApiAnswer> {
    const response = await fetch(`${server.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${token}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  /** The server's database, opened beside it (SQLite's WAL lets both write), for a moment. */
  async function withStore<T>(work: (store: Store) => Promise<T>): Promise<T> {
    // The server migrated it when it started.
    const store = await openStore(openDialect({ kind: 'sqlite', path: workspace.env.DATABASE_URL as string }), {
      migrate: false,
    });
    try {
      return await work(store);
    } finally {
      await store.close();
    }
  }

  async function newTenant(): Promise<Tenant> {
    const { accountId, token } = await withStore(async (store) => {
      const account = await store.ensureAccount(`test-${randomUUID()}`, Date.now());
      return { accountId: account.id, ...(await addToken(store, account.id)) };
    });
    const api = (path: string, init?: ApiInit) => call(token, path, init);
    return {
      accountId,
      token,
      api,
      async publish(data = SIGNED) {
        const answer = await api('/v1/events', { method: 'POST', body: { event: 'document.signed', data } });
        expect(answer.status).toBe(202);
        return answer.body.id as string;
      },
    };
  }

  /** A receiver on loopback for this test only, closed when it ends. */
  async function newReceiver(responder: Responder = answering(200)): Promise<Receiver> {
    const receiver = await startReceiver(responder);
    onTestFinished(() => receiver.close());
    return receiver;
  }

  async function subscribe(
    tenant: Tenant,
    targetUrl: string,
    eventType = 'document.signed',
    more: Record<string, unknown> = {},
  ): Promise<string> {
    const made = await tenant.api('/v1/webhooks/subscriptions', {
      method: 'POST',
      body: { target_url: targetUrl, event_type: eventType, ...more },
    });
    expect(made.status).toBe(200);
    const id = (made.body.subscriptions as { id: string }[])[0]?.id as string;
    expect(id).toMatch(/^sub_/);
    return id;
  }

  /** Waits until the delivery log, filtered by `query`, holds `count` deliveries, and returns them. */
  async function deliveriesOnceThere(tenant: Tenant, query: string, count: number): Promise<{ id: string }[]> {
    const list = async () => (await tenant.api(`/v1/deliveries?${query}`)).body.deliveries as { id: string }[];
    await expect.poll(list, { timeout: 15_000 }).toHaveLength(count);
    return list();
  }

  /** A subscription to a receiver that answers 503, faulted until its circuit opened. */
  async function trippedCircuit(tenant: Tenant) {
    const down = await newReceiver(() => ({ status: 503, body: 'down for maintenance' }));
    const id = await subscribe(tenant, `${down.url}/hooks`, 'document.declined');
    const circuit = async () =>
      ((await tenant.api(`/v1/webhooks/subscriptions/${id}`)).body.subscriptions as { circuit: Circuit }[])[0]
        ?.circuit as Circuit;
    // Ten faults in a row (the default threshold): test events go to this subscription only.
    for (let i = 0; i < 10; i++) {
      const sent = await tenant.api(`/v1/webhooks/subscriptions/${id}/test`, { method: 'POST', body: {} });
      expect(sent.status).toBe(202);
      await expect.poll(() => down.requests.length, { timeout: 15_000 }).toBe(i + 1);
    }
    await expect.poll(async () => (await circuit()).state, { timeout: 15_000 }).toBe('open');
    return { id, down, circuit };
  }

  /** A document of two signers, sent, and signed by the first (three entries in its audit chain). */
  async function signedDocument(tenant: Tenant) {
    const made = await tenant.api('/v1/documents', {
      method: 'POST',
      body: {
        title: 'Master services agreement',
        external_id: 'msa-7',
        signers: [{ email: 'ana@example.com', name: 'Ana Lima' }, { email: 'bo@example.com' }],
      },
    });
    expect(made.status).toBe(201);
    const doc = made.body as { id: string; audit_url: string; signers: { id: string }[] };
    expect((await tenant.api(`/v1/documents/${doc.id}/send`, { method: 'POST' })).status).toBe(200);
    const signed = await tenant.api(`/v1/documents/${doc.id}/signers/${doc.signers[0]?.id}/sign`, { method: 'POST' });
    expect(signed.status).toBe(200);
    return doc;
  }

  /** A fresh browser context (its own sessionStorage) and page, closed when the test ends. */
  async function openPortal(): Promise<Portal> {
    const context = await newPortalContext(browser.browser);
    onTestFinished(() => context.close());
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    return {
      context,
      page,
      problems: watchPage(page),
      nav: () => page.getByRole('navigation', { name: 'Main' }),
      heading: (name) => page.getByRole('heading', { level: 1, name }),
    };
  }

  /**
   * A fresh portal, signed in with the tenant's token through the sign-in form, as a person would,
   * on the screen at `path` (the form shows wherever the portal is opened, and the screen follows).
   */
  async function signIn(tenant: Tenant, path = '/ui/'): Promise<Portal> {
    const portal = await openPortal();
    await portal.page.goto(`${server.url}${path}`);
    await portal.page.getByLabel('API token').fill(tenant.token);
    await portal.page.getByRole('button', { name: 'Sign in' }).click();
    await portal.nav().waitFor();
    return portal;
  }

  /**
   * Nothing the page did was refused by the CSP or threw, and the API refused only what the test
   * meant it to (as `STATUS METHOD path`).
   */
  function expectNothingRefused(portal: Portal, meant: string[] = []): void {
    expect(portal.problems.errors.filter((e) => !e.startsWith('Failed to load resource'))).toEqual([]);
    expect(portal.problems.failedRequests).toEqual(meant);
  }

  // --- the tests ---------------------------------------------------------------------------------

  it('renders the interactive docs at /docs under their CSP, with nothing refused', async () => {
    const { page: docs, problems: seen } = await openPortal();
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
  });

  it('serves /ui with a strict CSP and signs in with the token printed at first start', async () => {
    // The first start's account and token: no other test uses them.
    const printed = server.printedTokens();
    expect(printed).toHaveLength(1);
    const token = printed[0] as string;
    // The first start says where the portal is.
    expect(server.stdout()).toContain(`Sign in with it at ${server.url}/ui/,`);
    const portal = await openPortal();
    const { page, nav, heading } = portal;
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
    expectNothingRefused(portal, ['401 GET /v1/me']);
  });

  it('creates a subscription and shows its signing secret once', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    const portal = await signIn(tenant);
    const { page, nav, heading } = portal;
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
    const id = (href ?? '').split('/').pop() as string;
    expect(id).toMatch(/^sub_/);
    expect((await tenant.api(`/v1/webhooks/subscriptions/${id}`)).body).toMatchObject({
      subscriptions: [{ target_url: `${receiver.url}/hooks/signed`, status: 'active' }],
    });
    expectNothingRefused(portal, ['400 POST /v1/webhooks/subscriptions']);
  });

  it('shows a published event arriving as delivered, and its attempt and request', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    // A secret token, echoed in every payload: the portal shows it masked.
    await subscribe(tenant, `${receiver.url}/hooks/signed`, 'document.signed', { secret_token: 'tok_portal_test' });
    const portal = await signIn(tenant);
    const { page, nav, heading } = portal;
    await nav().getByRole('link', { name: 'Deliveries' }).click();
    await heading('Deliveries').waitFor();
    const event = await tenant.publish();
    // The list reads itself again while a delivery is on its way: no reload.
    const delivered = page.getByRole('link', { name: /, delivered$/ });
    await delivered.first().waitFor({ timeout: 15_000 });
    await receiver.waitFor(1);

    await delivered.first().click();
    await heading('Delivery').waitFor();
    const delivery = page.url().split('/').pop() as string;
    expect(delivery).toMatch(/^dlv_/);
    expect(await page.getByTestId('delivery-status').textContent()).toBe('delivered');
    const attempt = page.getByTestId('attempt');
    expect(await attempt.count()).toBe(1);
    expect(await attempt.getByText('200', { exact: true }).count()).toBe(1);
    // The exact request: headers as the receiver got them, and the body with secret_token masked.
    const sent = receiver.requests[0];
    const headers = page.getByLabel('Request headers');
    expect(await headers.textContent()).toContain(String(sent?.headers['webhook-signature']));
    expect(await headers.textContent()).toContain(event);
    const body = JSON.parse((await page.getByLabel('Request body').textContent()) ?? '{}');
    expect(body).toMatchObject({ event: 'document.signed', data: SIGNED, secret_token: '********' });
    // Times in the viewer's zone, with the ISO time on hover.
    const time = page.locator('time').first();
    expect(await time.getAttribute('title')).toMatch(/^\d{4}-\d\d-\d\dT/);
    expectNothingRefused(portal);
  });

  it('shows a failed attempt when the receiver answers 500, and Redeliver delivers it', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver(answering(500));
    await subscribe(tenant, `${receiver.url}/hooks/signed`);
    await tenant.publish({ ...SIGNED, document_id: 'doc_failing' });
    const portal = await signIn(tenant);
    const { page, nav, heading } = portal;
    await nav().getByRole('link', { name: 'Deliveries' }).click();
    await heading('Deliveries').waitFor();
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
    expect(page.url().split('/').pop()).toMatch(/^dlv_/);
    expect(await page.getByTestId('delivery-status').textContent()).toBe('failed');
    expect(await page.getByTestId('attempt').getByText('500', { exact: true }).count()).toBe(1);
    await page.getByTestId('attempt').locator('summary').click();
    expect(await page.getByLabel('Answer excerpt').textContent()).toBe('boom');

    receiver.respond(answering(200));
    await page.getByRole('button', { name: 'Redeliver' }).click();
    await expect.poll(() => page.getByTestId('delivery-status').textContent(), { timeout: 15_000 }).toBe('delivered');
    await expect.poll(() => page.getByTestId('attempt').count()).toBe(2);
    expect(await page.getByTestId('attempt').first().getByText('manual').count()).toBe(1);
    expect(receiver.requests).toHaveLength(2);
    // Back and forward step through the screens and the filter.
    await page.goBack();
    await heading('Deliveries').waitFor();
    expect(page.url()).toContain('status=failed');
    await page.goForward();
    await heading('Delivery').waitFor();
    expectNothingRefused(portal);
  });

  it('pauses and resumes a subscription, and rotates its secret', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    const id = await subscribe(tenant, `${receiver.url}/hooks/signed`);
    const portal = await signIn(tenant, `/ui/subscriptions/${id}`);
    const { page, heading } = portal;
    await heading('Subscription').waitFor();
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    expect(await page.locator('.facts .status').first().textContent()).toBe('paused');
    expect((await tenant.api(`/v1/webhooks/subscriptions/${id}`)).body).toMatchObject({
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
    expectNothingRefused(portal);
  });

  it('sets, refuses and lifts a rate limit and ordering, and creates an operational-events subscription', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    const id = await subscribe(tenant, `${receiver.url}/hooks/signed`);
    const portal = await signIn(tenant, `/ui/subscriptions/${id}`);
    const { page, heading } = portal;
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
    expect((await tenant.api(`/v1/webhooks/subscriptions/${id}`)).body).toMatchObject({
      subscriptions: [{ rate_limit_per_second: 25, ordering: 'document' }],
    });

    await page.getByLabel('Rate limit (a second, empty for none)').fill('');
    await page.getByLabel('Ordering', { exact: true }).selectOption('none');
    await page.getByRole('button', { name: 'Save controls' }).click();
    await page.getByText('Saved: no rate limit, no ordering.').waitFor();
    expect((await tenant.api(`/v1/webhooks/subscriptions/${id}`)).body).toMatchObject({
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
    expect((await tenant.api(`/v1/webhooks/subscriptions/${opsId}`)).body).toMatchObject({
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
    expectNothingRefused(portal, [`400 PATCH /v1/webhooks/subscriptions/${id}`]);
  });

  it('replays a subscription’s failed deliveries in a time window', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver(answering(500));
    const id = await subscribe(tenant, `${receiver.url}/hooks/signed`);
    const failedOfSubscription = async () =>
      (await tenant.api(`/v1/deliveries?status=failed&subscription_id=${id}`)).body.deliveries;
    await tenant.publish({ ...SIGNED, document_id: 'doc_replayed' });
    await expect.poll(failedOfSubscription, { timeout: 15_000 }).toHaveLength(1);
    receiver.respond(answering(200));
    const portal = await signIn(tenant, `/ui/subscriptions/${id}`);
    const { page, heading } = portal;
    await heading('Subscription').waitFor();
    // The window's default (the last 24 hours) holds the failure.
    await page.getByRole('button', { name: 'Replay' }).click();
    await page.getByText('1 failed delivery was queued again.').waitFor();
    await expect.poll(failedOfSubscription, { timeout: 15_000 }).toHaveLength(0);
    await receiver.waitFor(2);
    // A window that holds nothing says so.
    await page.getByLabel('Failed deliveries created from').fill('2020-01-01T00:00');
    await page.getByLabel('until').fill('2020-01-02T00:00');
    await page.getByRole('button', { name: 'Replay' }).click();
    await page.getByText('No failed deliveries in that window.').waitFor();
    expectNothingRefused(portal);
  });

  it('moves the live chart after publishes, without a reload', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    await subscribe(tenant, `${receiver.url}/hooks/signed`);
    // Two delivered already, so the chart has something to show when the page opens.
    await Promise.all([tenant.publish(), tenant.publish()]);
    await deliveriesOnceThere(tenant, 'status=delivered', 2);
    const portal = await signIn(tenant);
    const { page, nav, heading } = portal;
    await nav().getByRole('link', { name: 'Overview' }).click();
    await heading('Overview').waitFor();
    const summary = page.getByTestId('attempts-summary');
    await summary.waitFor();
    const deliveredNow = async () => Number(/^(\d+) delivered/.exec((await summary.textContent()) ?? '')?.[1]);
    await expect.poll(deliveredNow).toBeGreaterThanOrEqual(2);
    const before = await deliveredNow();
    expect(await page.locator('[data-testid=attempts-chart] canvas').count()).toBe(1);
    await Promise.all([tenant.publish(), tenant.publish(), tenant.publish()]);
    await expect.poll(deliveredNow, { timeout: 20_000, interval: 500 }).toBeGreaterThanOrEqual(before + 3);
    expect(await page.getByTestId('count-delivered').textContent()).not.toBe('0');
    expectNothingRefused(portal);
  });

  it('a portal link signs in as its own account only, and leaves the address bar', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    await subscribe(tenant, `${receiver.url}/hooks/signed`);
    const session = await tenant.api('/v1/portal/sessions', { method: 'POST', body: {} });
    expect(session.status).toBe(201);
    // Another account, with a subscription of its own.
    const other = await newTenant();
    const otherSubId = await subscribe(other, `${receiver.url}/globex`, 'document.sent');
    // A portal link of this account that has expired.
    const expired = await withStore((store) =>
      addToken(store, tenant.accountId, {
        scopes: ['read', 'write'],
        kind: 'portal',
        expiresAt: Date.now() - 1000,
        now: Date.now() - 3_600_000,
      }),
    );
    const expiredLink = `${server.url}/ui/#token=${expired.token}`;

    const link = await tenant.api('/v1/portal/sessions', { method: 'POST', body: { expires_in_seconds: 600 } });
    expect(link.status).toBe(201);
    const url = link.body.url as string;
    expect(url).toMatch(/\/ui\/#token=cst_/);

    const { context: portal, page: customer, problems: customerProblems } = await openPortal();
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
  });

  it('sets and disables the account callback, with its credentials masked', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    const portal = await signIn(tenant);
    const { page, nav, heading } = portal;
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
    expectNothingRefused(portal);
  });

  it('deletes a subscription only after a confirmation', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    const id = await subscribe(tenant, `${receiver.url}/to-delete`, 'document.declined');
    const portal = await signIn(tenant, `/ui/subscriptions/${id}`);
    const { page, heading } = portal;
    await heading('Subscription').waitFor();
    await page.getByRole('textbox', { name: 'Target URL' }).fill(`${receiver.url}/moved`);
    await page.getByRole('button', { name: 'Save target URL' }).click();
    await page.getByText('Target URL saved.').waitFor();
    await expect.poll(() => page.locator('.facts dd.url').textContent()).toBe(`${receiver.url}/moved`);
    await page.getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete this subscription?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await tenant.api(`/v1/webhooks/subscriptions/${id}`)).status).toBe(200);
    await page.getByRole('button', { name: 'Delete' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await heading('Subscriptions').waitFor();
    expect((await tenant.api(`/v1/webhooks/subscriptions/${id}`)).status).toBe(404);
    expectNothingRefused(portal);
  });

  it('finds a document made through the API, shows its signers, opens its audit trail and verifies its chain', async () => {
    const tenant = await newTenant();
    const receiver = await newReceiver();
    // The one subscription that takes document.signed: the signature's webhook goes to it.
    await subscribe(tenant, `${receiver.url}/hooks/signed`);
    const doc = await signedDocument(tenant);
    // A draft beside it, for the filter.
    const draft = await tenant.api('/v1/documents', {
      method: 'POST',
      body: { title: 'Draft NDA', signers: [{ email: 'cy@example.com' }] },
    });
    expect(draft.status).toBe(201);

    const portal = await signIn(tenant);
    const { page, nav, heading } = portal;
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
    // The subscription that takes document.signed got the signature's webhook.
    await page
      .getByRole('region', { name: 'Webhooks' })
      .getByRole('link', { name: /, delivered$/ })
      .waitFor({ timeout: 15_000 });
    await receiver.waitFor(1);

    await page.getByRole('button', { name: 'Verify chain' }).click();
    await expect
      .poll(() => page.getByTestId('chain-verdict').textContent())
      .toBe('The chain verifies: 3 entries, each hashed over the one before.');
    await screenshot(page, 'document-verified-1280');

    // The audit trail opens in a tab of its own, without the portal's token.
    const link = page.getByRole('link', { name: 'Audit trail (opens in a new tab)' });
    expect(await link.getAttribute('href')).toBe(doc.audit_url);
    const [trail] = await Promise.all([portal.context.waitForEvent('page'), link.click()]);
    await trail.getByRole('heading', { level: 1, name: 'Audit trail' }).waitFor();
    expect(trail.url()).toBe(doc.audit_url);
    expect(await trail.getByRole('status').textContent()).toContain('The chain verifies: 3 entries');
    expect(await trail.getByRole('row').count()).toBe(4);
    await screenshot(trail, 'audit-trail-1280');
    expectNothingRefused(portal);
  });

  it('shows an endpoint’s open circuit, its last fault and next probe, and probes it now', async () => {
    const tenant = await newTenant();
    const { id, down, circuit } = await trippedCircuit(tenant);
    const portal = await signIn(tenant, `/ui/subscriptions/${id}`);
    const { page, nav, heading } = portal;
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
    const declined = await tenant.api('/v1/events', {
      method: 'POST',
      body: { event: 'document.declined', data: { ...SIGNED, reason: 'wrong address' } },
    });
    expect(declined.status).toBe(202);
    await deliveriesOnceThere(tenant, `subscription_id=${id}&status=postponed`, 1);
    await page.goto(`${server.url}/ui/subscriptions/${id}`);
    await heading('Subscription').waitFor();
    await page.getByRole('button', { name: 'Probe now' }).click();
    await page.getByText('Probing now').waitFor();
    // The probe went at once and met the same 503: the circuit counted it and stays open.
    await expect.poll(() => down.requests.length, { timeout: 15_000 }).toBe(11);
    await expect.poll(async () => (await circuit()).consecutive_failures, { timeout: 15_000 }).toBe(11);
    expect((await circuit()).state).toBe('open');
    expectNothingRefused(portal);
  });

  it('passes axe, reaches every control by keyboard and fits at 1280 and 390 px on every screen', async () => {
    // Something on every screen, as an operator usually sees it: a subscription with an event
    // delivered, a delivery that failed and was redelivered, an endpoint whose circuit is open,
    // a document part signed, and a callback set and signed.
    const tenant = await newTenant();
    const receiver = await newReceiver();
    const subscription = await subscribe(tenant, `${receiver.url}/hooks/signed`);
    const event = await tenant.publish();
    await deliveriesOnceThere(tenant, `subscription_id=${subscription}&status=delivered`, 1);
    receiver.respond(answering(500));
    await tenant.publish({ ...SIGNED, document_id: 'doc_failing' });
    const [failed] = await deliveriesOnceThere(tenant, `subscription_id=${subscription}&status=failed`, 1);
    const failedDelivery = failed?.id as string;
    receiver.respond(answering(200));
    expect((await tenant.api(`/v1/deliveries/${failedDelivery}/redeliver`, { method: 'POST' })).status).toBe(202);
    await expect
      .poll(async () => (await tenant.api(`/v1/deliveries/${failedDelivery}`)).body.status, { timeout: 15_000 })
      .toBe('delivered');
    const tripped = (await trippedCircuit(tenant)).id;
    const documentId = (await signedDocument(tenant)).id;
    const registered = await tenant.api('/api/sign/v1/callback/register', {
      method: 'PUT',
      body: { callbackUrl: `${receiver.url}/conga`, authType: 'Basic', username: 'conga', password: 'hunter22' },
    });
    expect(registered.status).toBe(200);
    expect((await tenant.api('/api/sign/v1/callback/rotate-secret', { method: 'POST', body: {} })).status).toBe(200);

    const screens: [string, string, string | RegExp][] = [
      ['overview', '/ui/', 'Overview'],
      ['subscriptions', '/ui/subscriptions', 'Subscriptions'],
      ['subscription', `/ui/subscriptions/${subscription}`, 'Subscription'],
      ['subscription-circuit-open', `/ui/subscriptions/${tripped}`, 'Subscription'],
      ['callback', '/ui/callback', 'Callback'],
      ['events', '/ui/events', 'Events'],
      ['event', `/ui/events/${event}`, /^Event/],
      ['deliveries', '/ui/deliveries', 'Deliveries'],
      ['delivery', `/ui/deliveries/${failedDelivery}`, 'Delivery'],
      ['documents', '/ui/documents', 'Documents'],
      ['document', `/ui/documents/${documentId}`, 'Master services agreement'],
    ];
    const portal = await signIn(tenant);
    const { page, heading } = portal;
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
    const { page: signInPage } = await openPortal();
    for (const [width, viewport] of Object.entries(WIDTHS)) {
      await signInPage.setViewportSize(viewport);
      await signInPage.goto(`${server.url}/ui/`);
      await signInPage
        .getByLabel('API token')
        .waitFor()
        .catch(async (err) => {
          await screenshot(signInPage, 'sign-in-failure');
          throw new Error(`${err}\n${await signInPage.content()}\n${server.stderr()}`);
        });
      for (const v of await seriousViolations(signInPage))
        report.push(`sign-in @${width}: ${v.id} ${v.targets.join(', ')}`);
      const shot = await screenshot(signInPage, `sign-in-${viewport.width}`);
      if (UPDATE_DOCS && width === 'wide') copyFileSync(shot, resolve(DOCS_UI, 'sign-in.png'));
    }
    expect(report).toEqual([]);
    expectNothingRefused(portal);
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
