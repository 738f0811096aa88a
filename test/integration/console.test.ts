import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { env, stackPolicyText } from '../helpers.ts';
import { chromiumPath, launchChromium } from './chromium.ts';
import { approveAndFinish, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The console as `factory dev up` runs it (src/console/run.ts, its own process, the read-only role),
 * on a pack whose low tier revalidates every second: the version the test deploys is overdue at once
 * (forced through the pack, not by editing rows, as evidence-pack.test.ts does for the inventory).
 */
describe('read-only console (real Temporal, PostgreSQL, S3, Triton; headless Chromium)', () => {
  let model: string;
  let version: number;
  let waitingId: string;
  let waitingModel: string;
  let browser: Browser;
  let consoleProcess: ChildProcess;
  let base: string;
  const scratch = path.join(env.FACTORY_HOME, 'test-data', `console-${suite.workers.prefix}`);
  const shots = process.env.FACTORY_UPDATE_DOCS ? path.join(projectRoot, 'docs') : scratch;

  beforeAll(async () => {
    fs.mkdirSync(scratch, { recursive: true });
    const deployed = await startTestLifecycle(suite.client, suite.workers);
    // A medium-risk lifecycle left at its gate: it waits for two roles (model-owner, validator).
    const waiting = await startTestLifecycle(suite.client, suite.workers, { modelName: `${deployed.input.modelName}-gate`, riskTier: 'medium' });
    const [outcome] = await Promise.all([
      approveAndFinish(suite.client, deployed.workflowId),
      waitForStatus(suite.client, waiting.workflowId, (s) => s.stage === 'approval', 400_000),
    ]);
    if (outcome.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(outcome)}`);
    model = deployed.input.modelName;
    version = outcome.version;
    waitingId = waiting.workflowId;
    waitingModel = waiting.input.modelName;

    const pack = path.join(scratch, 'tight-revalidation.yaml');
    fs.writeFileSync(pack, stackPolicyText().replace('revalidateEvery: 1095d', 'revalidateEvery: 1s'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const log = path.join(env.FACTORY_HOME, 'logs', `test-console-${port}.log`);
    const fd = fs.openSync(log, 'a');
    consoleProcess = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src', 'console', 'run.ts')], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, FACTORY_CONSOLE_PORT: String(port), FACTORY_POLICY_PACK: pack, LOG_LEVEL: 'info' },
    });
    fs.closeSync(fd);
    for (const deadline = Date.now() + 60_000; ; await sleep(200)) {
      if (consoleProcess.exitCode !== null || Date.now() > deadline) throw new Error(`console did not start:\n${fs.readFileSync(log, 'utf8').slice(-2000)}`);
      if (
        await fetch(`${base}/health`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
    }
    browser = await launchChromium(chromiumPath());
  }, 900_000);

  afterAll(async () => {
    await browser?.close();
    consoleProcess?.kill('SIGTERM');
    // The gate the test left open is closed (cancelled: its end is recorded like any other).
    if (waitingId) {
      const handle = suite.client.workflow.getHandle(waitingId);
      await handle.cancel().catch(() => undefined);
      await handle.result().catch(() => undefined);
    }
  }, 120_000);

  /** A page in Chromium that fails the test on any console error (a CSP violation is one) or page error. */
  async function open(url: string): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (err) => errors.push(err.message));
    const res = await page.goto(`${base}${url}`);
    expect(res?.status(), url).toBe(200);
    return { page, errors };
  }

  it('serves GET only, with security headers; hostile model names and versions are 404', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('script-src');
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).not.toMatch(/<script/i);

    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'])
      for (const url of ['/', `/models/${model}/${version}`, '/approvals', '/audit']) {
        const r = await fetch(`${base}${url}`, { method, headers: { 'content-type': 'application/json' }, body: '{}' });
        expect(r.status, `${method} ${url}`).toBe(405);
        expect(r.headers.get('allow')).toBe('GET, HEAD');
      }

    for (const url of [
      `/models/${model}/${version + 1000}`,
      `/models/${model}/0`,
      `/models/${model}/01`,
      `/models/${model}/1e3`,
      `/models/${model}/${'9'.repeat(12)}`,
      `/models/%3Cscript%3Ealert(1)%3C%2Fscript%3E/1`,
      `/models/${encodeURIComponent(`${model}\u0000`)}/${version}`,
      `/models/${model}/${version}/card.pdf`,
      '/models/..%2F..%2Fetc%2Fpasswd/1',
    ]) {
      const r = await fetch(`${base}${url}`);
      expect(r.status, url).toBe(404);
      const body = await r.text();
      expect(body, url).not.toContain('<script>');
      expect(body, url).not.toContain('alert(1)');
    }
    // A name longer than any route parameter may be is refused before routing.
    expect((await fetch(`${base}/models/${'a'.repeat(300)}/1`)).status).toBe(414);
  });

  it('renders the inventory with the overdue revalidation, the card and the lineage graph, the pending gates, the KPIs and the audit status in Chromium, with no console error', async () => {
    const pages: Array<{ errors: string[] }> = [];

    const inv = await open('/');
    const text = await inv.page.locator('main').innerText();
    expect(text).toContain('Model inventory');
    const row = inv.page.locator('tr', { hasText: `${model}@${version}` });
    const rowText = await row.innerText();
    expect(rowText).toMatch(/deployed\s+low\s+omar@hospital\.example/);
    expect(rowText).toContain('OVERDUE');
    expect(rowText).toContain('every 1s');
    expect(await inv.page.locator('.overdue-badge').first().isVisible()).toBe(true);
    expect(text).toMatch(/\d+ revalidation\(s\) overdue/);
    await inv.page.screenshot({ path: path.join(shots, 'console-inventory.png'), fullPage: true });
    pages.push(inv);

    // From the inventory to the version: the link is the route.
    await inv.page.click(`a[href="/models/${model}/${version}"]`);
    await inv.page.waitForURL(`${base}/models/${model}/${version}`);
    const svg = inv.page.locator('svg.lineage');
    expect(await svg.isVisible()).toBe(true);
    const stages = await svg.locator('g.node').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-stage')));
    expect(stages).toEqual(['data', 'training', 'artifact', 'approvals', 'deployment', 'requests']);
    const graph = await svg.locator('text').allTextContents();
    expect(graph).toContain('Data');
    expect(graph.some((l) => /^\d+\/\d+ rows certified$/.test(l))).toBe(true);
    expect(graph).toContain(`Artifact v${version}`);
    expect(graph).toContain('Approvals (1)');
    expect(graph).toContain('model-owner: Omar Haddad');
    expect(graph).toContain('serving: live');
    expect(graph).toContain('none logged');
    // The card is the card's own document, framed; it too says the revalidation is overdue.
    const card = inv.page.frameLocator('iframe.card').locator('body');
    await expect.poll(() => card.innerText(), { timeout: 30_000 }).toContain(`Model card: ${model}@${version}`);
    const cardText = await card.innerText();
    expect(cardText).toContain('OVERDUE');
    expect(cardText).toMatch(/accuracy\s+0\.\d{4}\s+0\.90\s+pass/);
    await inv.page.screenshot({ path: path.join(shots, 'console-lineage.png'), fullPage: true });
    await inv.page.close();

    const json = (await (await fetch(`${base}/models/${model}/${version}/card.json`)).json()) as {
      model: { name: string };
      revalidation: { overdue: boolean };
    };
    expect(json.model.name).toBe(model);
    expect(json.revalidation.overdue).toBe(true);

    // The gate's search attributes reach the visibility store a moment after the gate opens.
    for (const deadline = Date.now() + 30_000; !(await (await fetch(`${base}/approvals`)).text()).includes(waitingId); await sleep(500))
      if (Date.now() > deadline) throw new Error('the open gate never showed on /approvals');
    const appr = await open('/approvals');
    for (const role of ['model-owner', 'validator']) {
      const section = appr.page.locator('h2', { hasText: role });
      expect(await section.isVisible(), role).toBe(true);
    }
    const link = appr.page.locator('tr', { hasText: waitingId }).first().locator('a');
    const href = await link.getAttribute('href');
    expect(href).toBe(
      `http://127.0.0.1:${env.TEMPORAL_UI_PORT}/namespaces/${env.TEMPORAL_NAMESPACE}/workflows/${encodeURIComponent(waitingId)}/${encodeURIComponent((await suite.client.workflow.getHandle(waitingId).describe()).runId)}/history`,
    );
    expect(await appr.page.locator('main').innerText()).toContain(waitingModel);
    await appr.page.screenshot({ path: path.join(shots, 'console-approvals.png'), fullPage: true });
    pages.push(appr);
    await appr.page.close();

    const audit = await open('/audit');
    const auditText = await audit.page.locator('main').innerText();
    expect(auditText).toContain('VERIFIED');
    expect(auditText).toMatch(/newest checkpoint\s+seq \d+ over \d+ events/);
    await audit.page.screenshot({ path: path.join(shots, 'console-audit.png'), fullPage: true });
    pages.push(audit);
    await audit.page.close();

    const kpis = await open('/kpis');
    const kpiText = await kpis.page.locator('main').innerText();
    // The version deployed in the window counts: lineage complete for it (computeKpis, src/kpi).
    expect(kpiText).toMatch(/Lineage completeness \(versions deployed in the window\)\s+100\.0%\s+\d+\/\d+/);
    expect(kpiText).toContain('Inference latency p95');
    await kpis.page.screenshot({ path: path.join(shots, 'console-kpis.png'), fullPage: true });
    pages.push(kpis);
    await kpis.page.close();
    for (const since of ['<script>', '2026-02-30', 'x'.repeat(100), '9999-01-01']) {
      const r = await fetch(`${base}/kpis?since=${encodeURIComponent(since)}`);
      expect(r.status, since).toBe(400);
      expect(await r.text()).not.toContain('<script>');
    }

    expect(pages.flatMap((p) => p.errors)).toEqual([]);
    expect(fs.statSync(path.join(shots, 'console-lineage.png')).size).toBeGreaterThan(10_000);
  }, 180_000);
});
