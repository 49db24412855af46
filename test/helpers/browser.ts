/**
 * Headless Chromium (Debian's `chromium`, installed on first use) driven by
 * playwright-core, for the dashboard tests: a page that may load nothing but the service
 * under test, and that records every page error, external request and console error.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { ensureDebianPackage } from './apt';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export interface DashboardBrowser {
  browser: Browser;
  page: Page;
  /** What went wrong in the page; a test expects it empty. */
  pageErrors: string[];
}

export async function openDashboardBrowser(baseUrl: string): Promise<DashboardBrowser> {
  const executablePath = ensureDebianPackage(CHROMIUM, 'chromium');
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  const pageErrors: string[] = [];
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
  // Everything comes from the service: any other request is a bug in the page.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(baseUrl + '/') || url.startsWith('data:')) return route.continue();
    pageErrors.push(`external request: ${url}`);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // The 400 and 503 the tests provoke on purpose are logged by the browser as failed loads.
    if (m.type() === 'error' && !/Failed to load resource: .* status of (400|503)\b/.test(m.text())) {
      pageErrors.push(`console error: ${m.text()}`);
    }
  });
  return { browser, page, pageErrors };
}
