import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KpiReport } from '../../src/domain/kpi.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { createKey, writeKeysFile } from '../../src/gateway/keys.ts';
import { decide } from '../../src/lifecycle/client.ts';
import { policyPackPath } from '../../src/policy/pack.ts';
import { env } from '../helpers.ts';
import { GatewayProcess, factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

// KPIs against facts this test makes and counts itself: two versions deployed, one decision refused,
// inferences served and one refused at the gateway, one rollback. `--model` keeps other tests' facts out.
const MODEL = `kpi-${randomBytes(4).toString('hex')}`;
const caller = createKey('lena@hospital.example', 'triage');
const gatewayEnv: NodeJS.ProcessEnv = {};
// Ports of this stack's block not taken by the dev gateway (+0) or other tests' gateways (+1 … +3).
const gateway = new GatewayProcess(gatewayEnv, env.FACTORY_GATEWAY_PORT + 4);
const METRICS_PORT = env.FACTORY_GATEWAY_PORT + 5;
// The workers verify a rollback's first correct inference on Triton (no service key): the gateway sees only the test's requests.
const workerEnv: NodeJS.ProcessEnv = {};
const suite = lifecycleSuite({ workerEnv, startWorkers: false });
const cli = (args: string[]) => factoryCli(args, { FACTORY_TASK_QUEUE_PREFIX: suite.workers.prefix });

const SAMPLE = [
  17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003,
  0.006193, 25.38, 17.33, 184.6, 2019, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
];

async function infer(key: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${gateway.base}/v2/models/${MODEL}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 30], datatype: 'FP32', data: SAMPLE }] }),
  });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - t0 };
}

/** The value of one series in a Prometheus text exposition (the sum when several lines match). */
function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('KPIs and metrics from a seeded run (real lifecycles, gateway, rollback; Temporal, PostgreSQL, S3, Triton)', () => {
  const started = new Date();
  // What the test did, counted as it did it.
  const did = { versions: 0, refusedDecisions: 0, served: 0, refused401: 0, latencies: [] as number[], rtoMs: 0 };

  beforeAll(async () => {
    // The control worker serves metrics; the other zones run without (one port per process).
    workerEnv.FACTORY_METRICS_PORT = String(METRICS_PORT);
    workerEnv.FACTORY_METRICS_KPI_SECONDS = '1';
    await suite.workers.start('control');
    delete workerEnv.FACTORY_METRICS_PORT;
    await Promise.all([suite.workers.start('gpu-onprem'), suite.workers.start('serving')]);

    const [a, b] = await Promise.all([
      startTestLifecycle(suite.client, suite.workers, { modelName: MODEL }),
      startTestLifecycle(suite.client, suite.workers, { modelName: MODEL }),
    ]);
    const [sa, sb] = await Promise.all([a, b].map((l) => waitForStatus(suite.client, l.workflowId, (s) => s.stage === 'approval', 600_000)));
    const byVersion = [
      { id: a.workflowId, s: sa! },
      { id: b.workflowId, s: sb! },
    ].sort((x, y) => x.s.version! - y.s.version!);
    // One decision the gate refuses (it names another artifact), then the owner's approvals.
    const refused = await decide(suite.client, byVersion[0]!.id, {
      decision: 'approve',
      approver: 'omar@hospital.example',
      role: 'model-owner',
      meaning: 'approval',
      modelDigest: `sha256:${'0'.repeat(64)}`,
    });
    expect(refused.accepted).toBe(false);
    did.refusedDecisions++;
    for (const { id, s } of byVersion) {
      const verdict = await decide(suite.client, id, {
        decision: 'approve',
        approver: 'omar@hospital.example',
        role: 'model-owner',
        meaning: 'approval',
        modelDigest: s.modelDigest!,
      });
      expect(verdict.accepted).toBe(true);
      expect(((await suite.client.workflow.getHandle(id).result()) as LifecycleOutcome).outcome).toBe('deployed');
      did.versions++;
    }

    const dir = path.join(env.FACTORY_HOME, 'test-data', `kpi-${suite.workers.prefix}`);
    fs.mkdirSync(dir, { recursive: true });
    const pack = parse(fs.readFileSync(policyPackPath(), 'utf8')) as Record<string, unknown>;
    pack.useCases = [{ name: 'triage', models: [MODEL], riskTiers: ['low'] }];
    fs.writeFileSync(path.join(dir, 'pack.yaml'), stringify(pack));
    writeKeysFile(path.join(dir, 'keys.yaml'), [caller.entry]);
    Object.assign(gatewayEnv, { FACTORY_POLICY_PACK: path.join(dir, 'pack.yaml'), FACTORY_GATEWAY_KEYS_FILE: path.join(dir, 'keys.yaml') });
    await gateway.start();

    for (let i = 0; i < 6; i++) {
      const r = await infer(caller.key);
      expect(r.status).toBe(200);
      did.served++;
      did.latencies.push(r.ms);
    }
    expect((await infer(`fk_${'x'.repeat(40)}`)).status).toBe(401);
    did.refused401++;

    const rb = await cli(['rollback', MODEL, '--reason', 'test: kpi', '--as', 'dana@hospital.example', '--json']);
    expect(rb.code, rb.stderr).toBe(0);
    const outcome = JSON.parse(rb.stdout) as { outcome: string; rtoMs: number };
    expect(outcome.outcome).toBe('rolled-back');
    did.rtoMs = outcome.rtoMs;
    const after = await infer(caller.key);
    expect(after.status).toBe(200);
    did.served++;
    did.latencies.push(after.ms);
  }, 1_500_000);

  afterAll(async () => {
    await gateway.kill('SIGTERM');
  });

  it('factory kpi --json matches the facts the test made', async () => {
    const run = await cli(['kpi', '--json', '--model', MODEL, '--since', started.toISOString()]);
    expect(run.code, run.stderr).toBe(0);
    const { kpis } = JSON.parse(run.stdout) as KpiReport;
    expect(kpis.lineageCompleteness).toMatchObject({ value: 1, numerator: did.versions, denominator: did.versions, met: true });
    // After the rollback one version serves: the older one, behind the live route.
    expect(kpis.certifiedArtifactRate).toMatchObject({ value: 1, numerator: 1, denominator: 1 });
    expect(kpis.signedArtifactCoverage).toMatchObject({ value: 1, numerator: did.versions, denominator: did.versions });
    expect(kpis.auditLogCompleteness).toMatchObject({ value: 1, numerator: did.versions, denominator: did.versions });
    expect(kpis.approvalSlaAdherence).toMatchObject({ value: 1, numerator: did.versions, denominator: did.versions, detail: { timedOut: 0, open: 0 } });
    expect(kpis.rollbackTime).toMatchObject({ value: did.rtoMs, numerator: 1, denominator: 1, detail: { rollbacks: 1, unrecovered: 0 } });
    expect(kpis.inferenceP95.denominator).toBe(did.served);
    expect(kpis.inferenceP95.detail).toMatchObject({ requests: did.served + did.refused401, served: did.served, refused: did.refused401, failed: 0 });
    // The gateway's own figure (received → logged) cannot exceed what the test saw round trip.
    expect(kpis.inferenceP95.value).toBeGreaterThan(0);
    expect(kpis.inferenceP95.value!).toBeLessThanOrEqual(Math.max(...did.latencies) + 1);
    expect(kpis.policyViolations).toMatchObject({
      value: did.refusedDecisions + did.refused401,
      detail: { refusedDecisions: did.refusedDecisions, gatewayPolicyRefusals: did.refused401, failedDrills: 0 },
    });

    // Bad input: exit 2, nothing computed.
    for (const bad of [
      ['--since', 'tomorrow'],
      ['--since', '2999-01-01'],
      ['--model', 'a\u001b[2J'],
    ]) {
      const r = await cli(['kpi', '--json', ...bad]);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
    }
  });

  it('the gateway and a worker expose the same figures at /metrics', async () => {
    const gw = await (await fetch(`${gateway.base}/metrics`)).text();
    expect(series(gw, 'factory_gateway_requests_total', { model: MODEL, outcome: 'served', status: '200' })).toBe(did.served);
    expect(series(gw, 'factory_gateway_requests_total', { model: MODEL, version: '-', status: '401', outcome: 'refused' })).toBe(did.refused401);
    expect(series(gw, 'factory_gateway_request_duration_seconds_count', { model: MODEL, outcome: 'served' })).toBe(did.served);
    expect(series(gw, 'factory_gateway_request_log_rows_total')).toBe(did.served + did.refused401);
    expect(series(gw, 'factory_gateway_request_log_commit_seconds_count')).toBeGreaterThan(0);

    const wk = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
    // This worker process ran only this test's lifecycles.
    expect(series(wk, 'factory_lifecycles_started_total')).toBe(did.versions);
    expect(series(wk, 'factory_lifecycles_completed_total', { outcome: 'deployed' })).toBe(did.versions);
    expect(
      series(wk, 'factory_activity_duration_seconds_count', { activity_type: 'appendAudit', task_queue: `${suite.workers.prefix}control` }),
    ).toBeGreaterThan(0);

    // The KPI gauges are computeKpis' default window over every model: the CLI's figures at the same moment.
    const run = await cli(['kpi', '--json', '--no-history']);
    expect(run.code, run.stderr).toBe(0);
    const { kpis } = JSON.parse(run.stdout) as KpiReport;
    for (const k of Object.values(kpis)) {
      if (k.value === null) expect(series(wk, 'factory_kpi_value', { kpi: k.id }), k.id).toBeUndefined();
      else expect(series(wk, 'factory_kpi_value', { kpi: k.id, unit: k.unit }), k.id).toBeCloseTo(k.value, 9);
      if (k.denominator !== null) expect(series(wk, 'factory_kpi_denominator', { kpi: k.id }), k.id).toBe(k.denominator);
    }
    expect(await fetch(`http://127.0.0.1:${METRICS_PORT}/other`).then((r) => r.status)).toBe(404);
  });
});
