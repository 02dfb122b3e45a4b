/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// A real browser for the portal's tests: Debian's chromium driven by playwright-core, headless,
// with a fresh profile and the flags that keep it off the network. There is no fallback: when
// chromium is missing the suite fails and says how to install it (.ci/run installs it).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = process.env.COUNTERSIGN_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Where the screenshots of a run go (git-ignored); one of each screen at 1280 px is copied to docs/ui. */
export const SCREENSHOTS = resolve(import.meta.dirname, '../../test-results/ui');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no chromium at ${CHROMIUM}: install it with "apt-get install -y chromium" (or point COUNTERSIGN_TEST_CHROMIUM at one)`,
    );
  }
  // Playwright starts every launch on a fresh temporary profile (--user-data-dir) of its own,
  // removed when the browser closes; it refuses one passed in the arguments.
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  return { browser, close: () => browser.close() };
}

export const WIDTHS = { wide: { width: 1280, height: 900 }, narrow: { width: 390, height: 844 } } as const;

/** A fresh context (its own sessionStorage) whose pages record CSP violations and page errors. */
export async function newPortalContext(browser: Browser, viewport = WIDTHS.wide): Promise<BrowserContext> {
  return browser.newContext({ viewport, timezoneId: 'Europe/Berlin', locale: 'en-GB' });
}

export interface PageProblems {
  /** Console errors and uncaught exceptions, CSP violations among them. */
  errors: string[];
  /** API answers of 400 and up, as `STATUS METHOD path`. */
  failedRequests: string[];
}

export function watchPage(page: Page): PageProblems {
  const problems: PageProblems = { errors: [], failedRequests: [] };
  page.on('response', (response) => {
    if (response.status() >= 400) {
      const url = new URL(response.url());
      problems.failedRequests.push(`${response.status()} ${response.request().method()} ${url.pathname}${url.search}`);
    }
  });
  page.on('console', (message) => {
    if (message.type() === 'error') problems.errors.push(message.text());
  });
  page.on('pageerror', (err) => problems.errors.push(err.message));
  return problems;
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * axe-core's serious and critical violations on the page as it is now. The script is evaluated over
 * the DevTools protocol, which the page's CSP does not govern, so the page keeps its real policy.
 */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: object) => Promise<unknown> } }).axe;
    const result = (await axe.run(document, { resultTypes: ['violations'] })) as {
      violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
    };
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')),
    }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
