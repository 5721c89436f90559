// The verify page (dist/verify.html) in headless Chromium, driven by
// Playwright: opened from disk, given a bundle, keys and a request as a user
// would, read back as the user sees it. Every request the page makes is kept.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { buildPage } from '../../scripts/build-verify-page.mjs';

export const PAGE = fileURLToPath(new URL('../../dist/verify.html', import.meta.url));

/** The Debian chromium; a missing browser fails with the fix (the test is not skipped). */
export function chromiumPath() {
  const r = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || !path) throw new Error('chromium is not installed: the verify page is tested in it. Fix: bash scripts/setup.sh (it installs the Debian package chromium), or apt-get install chromium');
  return path;
}

/** The shipped page, which must be the one the build makes from today's code. */
export function shippedPage() {
  if (!existsSync(PAGE)) throw new Error(`${PAGE} is missing. Fix: npm run build`);
  if (readFileSync(PAGE, 'utf8') !== buildPage()) throw new Error(`${PAGE} is not what scripts/build-verify-page.mjs makes from today's dist/: it is stale. Fix: npm run build`);
  return pathToFileURL(PAGE).href;
}

export async function openVerifyPage() {
  const url = shippedPage();
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  const page = await browser.newPage();
  const requests = [];
  const errors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 }).catch(async () => {
    throw new Error(`the verify page did not load its verifier: ${await page.textContent('#verdict')} ${errors.join('; ')}`);
  });
  return { browser, page, requests, errors, url };
}

let uploads = 0;

/** Drops nothing: chooses the bundle (and request) with the file inputs and pastes the keys, then reads the verdict and each check. */
export async function verifyInPage(page, bundleText, { receiptKeys = '', checkpointKeys = '', request } = {}) {
  await page.fill('#trusted-receipt-keys', receiptKeys);
  await page.fill('#trusted-checkpoint-keys', checkpointKeys);
  if (request !== undefined) await page.setInputFiles('#request-file', { name: 'request.json', mimeType: 'application/json', buffer: Buffer.from(request) });
  else await page.setInputFiles('#request-file', []);
  // A name of its own each time, so the page shows when this bundle's report is in.
  const name = `bundle-${++uploads}.json`;
  await page.setInputFiles('#bundle-file', { name, mimeType: 'application/json', buffer: Buffer.from(bundleText) });
  await page.waitForFunction((n) => document.getElementById('bundle-name').textContent === n && document.getElementById('verdict').dataset.verdict !== 'none', name);
  return page.evaluate(() => ({
    verdict: document.getElementById('verdict').dataset.verdict,
    summary: document.getElementById('verdict').textContent,
    checks: Object.fromEntries([...document.querySelectorAll('#checks tbody tr')].map((tr) => [tr.dataset.check, tr.dataset.status])),
  }));
}
