import fs from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { env } from '../helpers.ts';
import { chromiumPath, launchChromium } from './chromium.ts';
import { approveAndFinish, factoryCli, lifecycleSuite, startTestLifecycle } from './harness.ts';

const suite = lifecycleSuite();

describe('model card of a deployed version (real Temporal, PostgreSQL, S3, Triton; headless Chromium)', () => {
  let model: string;
  let version: number;
  let browser: Browser;

  beforeAll(async () => {
    const started = await startTestLifecycle(suite.client, suite.workers);
    const outcome = await approveAndFinish(suite.client, started.workflowId);
    if (outcome.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(outcome)}`);
    model = started.input.modelName;
    version = outcome.version;
    browser = await launchChromium(chromiumPath());
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('writes the JSON and HTML card; Chromium shows the model, tier, a metric and the approver, and prints it to PDF', async () => {
    const dir = path.join(env.FACTORY_HOME, 'test-data', `card-${suite.workers.prefix}`);
    fs.mkdirSync(dir, { recursive: true });

    const json = await factoryCli(['card', `${model}@${version}`, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const card = JSON.parse(json.stdout) as import('../../src/cards/card.ts').ModelCard;
    expect(card.model).toMatchObject({ name: model, version, riskTier: 'low', state: 'deployed' });
    expect(card.approvals.map((a) => [a.name, a.role])).toEqual([['Omar Haddad', 'model-owner']]);
    expect(card.metrics.find((m) => m.metric === 'accuracy')).toMatchObject({ threshold: 0.9, pass: true });
    expect(card.data.rowsTotal).toBeGreaterThan(0);
    expect(card.serving.deployedAt).not.toBeNull();
    expect(card.revalidation.revalidationDueAt).not.toBeNull();

    const file = path.join(dir, 'card.html');
    const written = await factoryCli(['card', `${model}@${version}`, '--out', file]);
    expect(written.code, written.stderr).toBe(0);
    const html = fs.readFileSync(file, 'utf8');
    expect(html).not.toMatch(/<script/);

    const page = await browser.newPage({ viewport: { width: 1000, height: 1200 } });
    await page.goto(`file://${file}`);
    const text = await page.locator('body').innerText();
    expect(text).toContain(`Model card: ${model}@${version}`);
    expect(text).toContain('risk tier low');
    expect(text).toMatch(/accuracy\s+0\.\d{4}\s+0\.90\s+pass/);
    expect(text).toContain('Omar Haddad');
    expect(text).toContain('model-owner');
    const pdf = await page.pdf({ format: 'A4', printBackground: true });
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(pdf.length).toBeGreaterThan(5_000);
    // The screenshot in docs/ is refreshed on request only: a test run leaves the tracked tree as it was.
    const shot = process.env.FACTORY_UPDATE_DOCS ? path.join(projectRoot, 'docs', 'model-card.png') : path.join(path.dirname(file), 'model-card.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
    await page.close();

    // Meaningful exit codes: no such version 6; a bad format, no version, --json with HTML on stdout 2.
    expect((await factoryCli(['card', `${model}@${version + 100}`])).code).toBe(6);
    for (const args of [
      ['--format', 'pdf'],
      ['--format', 'html', '--json'],
    ])
      expect((await factoryCli(['card', `${model}@${version}`, ...args])).code, args.join(' ')).toBe(2);
    expect((await factoryCli(['card', model])).code).toBe(2);
  }, 120_000);
});
