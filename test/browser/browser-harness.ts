// Shared by the browser tests: the bundle built once per process, the
// project's test/artifacts folder, and Debian's chromium driven by playwright-core.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { buildBrowser } from '../../src/browser/build.js';

export const CHROMIUM = '/usr/bin/chromium';

/** The project root, from dist/test/browser. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

let built: Promise<{ clientJs: string; statusHtml: string }> | null = null;

/** dist/static/client.js and status.html, fresh from src (npm run build makes the same). */
export function ensureBrowserBuild(): Promise<{ clientJs: string; statusHtml: string }> {
  built ??= buildBrowser(ROOT);
  return built;
}

export function artifactPath(name: string): string {
  const dir = path.join(ROOT, 'test', 'artifacts');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

/** Headless chromium; fails (never skips) with the install command when it is missing. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`apt-get install -y chromium\` (.ci/run does)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 20_000,
  });
}
