import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Debian's chromium, installed with apt-get when missing (CI's clean machine runs as root). */
export function chromiumPath(): string {
  const bin = '/usr/bin/chromium';
  if (fs.existsSync(bin)) return bin;
  if (process.getuid?.() !== 0) throw new Error('chromium is not installed and this is not root: `apt-get install chromium` first');
  const install = () =>
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: 'pipe',
      timeout: 600_000,
    });
  try {
    install();
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'pipe', timeout: 300_000 });
    install();
  }
  return bin;
}

/** Headless Debian chromium driven by playwright-core (no browser download). */
export async function launchChromium(executablePath: string = chromiumPath()): Promise<Browser> {
  return chromium.launch({ executablePath, args: ['--no-sandbox'] });
}
