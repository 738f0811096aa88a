import fs from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MonitorStatus, MONITOR_STATUS_QUERY, monitorWorkflowId } from '../../src/domain/monitor.ts';
import type { RollbackOutcome } from '../../src/domain/rollback.ts';
import { servingRoutes } from '../../src/gateway/routes.ts';
import { createKey, writeKeysFile } from '../../src/gateway/keys.ts';
import { policyPackPath } from '../../src/policy/pack.ts';
import { env } from '../helpers.ts';
import { DATASET, GatewayProcess, TEST_DATA, approveAndFinish, factoryCli, lifecycleSuite, randomCommit, startTestLifecycle, waitFor } from './harness.ts';

// The pack the workers and the gateway run on: the stack's effective pack, whose low tier is monitored
// every 5 s and rolls back on a breach; errors and latency are judged loosely so drift alone decides.
const dir = path.join(TEST_DATA, `monitoring-${process.pid}`);
fs.mkdirSync(dir, { recursive: true });
const PACK = path.join(dir, 'pack.yaml');
const pack = parse(fs.readFileSync(policyPackPath(), 'utf8')) as { riskTiers: Record<string, Record<string, unknown>>; useCases?: unknown[] };
pack.riskTiers.low!.monitoring = {
  window: '5s',
  minRows: 200,
  maxFeaturePsi: 0.25,
  maxPredictionPsi: 0.25,
  maxConfidenceShift: 0.15,
  maxErrorRate: 0.5,
  maxLatencyP95Ms: 60_000,
  autoRollback: true,
};
const suite = lifecycleSuite({ workerEnv: { FACTORY_POLICY_PACK: PACK } });
const model = `mon-${suite.workers.prefix.slice(1, -1)}`;
pack.useCases = [{ name: 'screening', models: [model], riskTiers: ['low'] }];
// Written before the workers start: they read the pack at start.
fs.writeFileSync(PACK, stringify(pack));
const PORT = env.FACTORY_GATEWAY_PORT + 3;

/** The dataset's feature rows (the CSV's columns are the schema's features, then the label). */
function datasetRows(): number[][] {
  const lines = fs.readFileSync(DATASET, 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => l.split(',').slice(0, 30).map(Number));
}

describe('deployment monitoring (real Triton, gateway, Temporal, PostgreSQL, S3)', () => {
  let v1: number;
  let v2: number;
  let key: string;
  let gateway: GatewayProcess;
  const rows = datasetRows();

  beforeAll(async () => {
    // Two versions of one model: the second is the one monitored and rolled back from.
    for (const which of [1, 2]) {
      const started = await startTestLifecycle(suite.client, suite.workers, { modelName: model, commitSha: randomCommit() });
      const outcome = await approveAndFinish(suite.client, started.workflowId);
      if (outcome.outcome !== 'deployed') throw new Error(`version ${which} not deployed: ${JSON.stringify(outcome)}`);
      if (which === 1) v1 = outcome.version;
      else v2 = outcome.version;
    }
    const k = createKey('lena@hospital.example', 'screening');
    key = k.key;
    writeKeysFile(path.join(dir, 'keys.yaml'), [k.entry]);
    gateway = new GatewayProcess({ FACTORY_POLICY_PACK: PACK, FACTORY_GATEWAY_KEYS_FILE: path.join(dir, 'keys.yaml') }, PORT);
    await gateway.start();
  }, 900_000);

  afterAll(async () => {
    await gateway?.kill('SIGTERM');
    await suite.client.workflow
      .getHandle(monitorWorkflowId(model))
      .terminate('test over')
      .catch(() => undefined);
  });

  /** Sends batches of `perRequest` dataset rows (transformed) through the gateway until `until` says stop. */
  async function stream(transform: (row: number[]) => number[], until: () => Promise<boolean>): Promise<{ versions: Set<string>; sent: number }> {
    const versions = new Set<string>();
    let sent = 0;
    let i = 0;
    for (const deadline = Date.now() + 240_000; Date.now() < deadline;) {
      const batch = Array.from({ length: 32 }, () => transform(rows[i++ % rows.length]!));
      const res = await fetch(`${gateway.base}/v2/models/${model}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ inputs: [{ name: 'input', shape: [32, 30], datatype: 'FP32', data: batch.flat() }] }),
      });
      const body = (await res.json()) as { model_version?: string };
      expect(res.status, JSON.stringify(body)).toBe(200);
      versions.add(body.model_version!);
      sent++;
      if (sent % 10 === 0 && (await until())) return { versions, sent };
    }
    throw new Error('the stream ran for 4 minutes without its condition');
  }

  const status = () => suite.client.workflow.getHandle(monitorWorkflowId(model)).query<MonitorStatus>(MONITOR_STATUS_QUERY);
  const windowsSince = (t: Date) =>
    suite.db.selectFrom('monitoring_windows').selectAll().where('model_name', '=', model).where('window_start', '>=', t).orderBy('window_start').execute();

  it('the gateway logs bins and scores, never the values; an undrifted stream raises no review', async () => {
    // The lifecycle started the monitor at deployment (the tier has `monitoring`).
    expect((await status()).windowMs).toBe(5_000);
    const since = new Date();
    await stream(
      (r) => r,
      async () => (await windowsSince(since)).filter((w) => (w.figures as { driftJudged?: boolean }).driftJudged).length >= 2,
    );
    const judged = (await windowsSince(since)).filter((w) => (w.figures as { driftJudged?: boolean }).driftJudged);
    for (const w of judged) {
      expect(w.breaches).toEqual([]);
      expect(w.model_version_id).not.toBeNull();
      expect(w.distribution_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect((w.figures as { version: number }).version).toBe(v2);
      expect((w.figures as { maxFeaturePsi: { value: number } }).maxFeaturePsi.value).toBeLessThan(0.25);
    }
    expect((await status()).openReview).toBeUndefined();
    const logged = await suite.db
      .selectFrom('gateway_requests')
      .select(['feature_bins', 'scores'])
      .where('model_name', '=', model)
      .where('received_at', '>=', since)
      .limit(1)
      .executeTakeFirstOrThrow();
    expect(logged.feature_bins).toHaveLength(32 * 30);
    expect(logged.feature_bins!.every((b) => Number.isInteger(b) && b >= 0 && b <= 9)).toBe(true);
    expect(logged.scores).toHaveLength(32);
    // The training distribution is locked evidence, named with its digest in the version's environment.
    const mv = await suite.db
      .selectFrom('model_versions')
      .select('environment')
      .where('model_name', '=', model)
      .where('version', '=', v2)
      .executeTakeFirstOrThrow();
    expect((mv.environment as { trainingDistribution: { uri: string; digest: string } }).trainingDistribution).toMatchObject({
      uri: expect.stringMatching(/training-distribution\.json$/),
      digest: expect.stringMatching(/^sha256:/),
    });
  });

  it('a drifted stream raises a review, rolls back to the previous version (trigger monitoring), and the review closes only on a valid acknowledgement', async () => {
    // Every feature 60% larger than the dataset's: far beyond the training deciles.
    await stream(
      (r) => r.map((v) => v * 1.6),
      async () => !!(await status()).openReview,
    );
    const review = (await status()).openReview!;
    expect(review.version).toBe(v2);
    expect(v2).toBeGreaterThan(v1);
    expect(review.breaches.some((b) => b.metric === 'feature-psi')).toBe(true);
    expect(review.autoRollback).toBe(true);
    expect(review.rollbackWorkflowId).toBe(`rollback-${model}-monitoring-w${review.windowId}`);
    const handle = suite.client.workflow.getHandle(monitorWorkflowId(model));
    // Search attributes are applied when the workflow task that set them completes: wait for it.
    const reviewAttribute = async (value: string) =>
      waitFor(`MonitoringReview=${value}`, async () => ((await handle.describe()).searchAttributes.MonitoringReview?.[0] === value ? true : undefined), 60_000);
    await reviewAttribute('open');
    const trail = await suite.db.selectFrom('audit_events').select(['kind', 'payload']).where('workflow_id', '=', monitorWorkflowId(model)).execute();
    expect(trail.map((e) => e.kind)).toEqual(expect.arrayContaining(['monitoring.window', 'monitoring.breach', 'monitoring.review-opened']));
    expect(await suite.db.selectFrom('monitoring_reviews').selectAll().where('review_id', '=', review.reviewId).executeTakeFirst()).toMatchObject({
      auto_rollback: true,
      rollback_workflow_id: review.rollbackWorkflowId,
    });

    // The rollback (trigger 'monitoring') re-serves the previous version through the gateway.
    const rolledBack = (await suite.client.workflow.getHandle(review.rollbackWorkflowId!).result()) as RollbackOutcome;
    expect(rolledBack).toMatchObject({ modelName: model, fromVersion: v2, toVersion: v1, trigger: 'monitoring', requestedBy: monitorWorkflowId(model) });
    const [route] = await servingRoutes(suite.db, model);
    expect(route?.version).toBe(v1);
    const served = await waitFor('the gateway serving the previous version', async () => {
      const res = await fetch(`${gateway.base}/v2/models/${model}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 30], datatype: 'FP32', data: rows[0] }] }),
      });
      const body = (await res.json()) as { model_version?: string };
      return body.model_version === String(v1) ? body : undefined;
    });
    expect(served.model_version).toBe(String(v1));
    // The monitor follows the route: its next windows judge the restored version.
    const switched = new Date(rolledBack.switchedAt);
    await waitFor(
      'a window of the restored version',
      async () => (await windowsSince(switched)).some((w) => (w.figures as { version?: number }).version === v1) || undefined,
      60_000,
    );

    // Refused, and recorded: someone who is not a principal of the pack, and a malformed payload.
    const notPrincipal = await factoryCli(['monitor', 'ack', model, '--as', 'mallory@elsewhere.example', '--reason', 'looks fine to me', '--json']);
    expect(notPrincipal.code, notPrincipal.stderr).toBe(4);
    expect(JSON.parse(notPrincipal.stdout)).toMatchObject({ acknowledged: false, refused: expect.stringMatching(/not a principal/) });
    await handle.signal('acknowledge', { by: 'dana@hospital.example', reason: 'x\u0007y' });
    await waitFor('the malformed acknowledgement refused', async () => ((await status()).refused.length >= 2 ? true : undefined), 60_000);
    expect((await status()).openReview?.reviewId).toBe(review.reviewId);

    const ack = await factoryCli([
      'monitor',
      'ack',
      model,
      '--as',
      'dana@hospital.example',
      '--reason',
      'input drift confirmed: upstream unit change; rolled back',
      '--json',
    ]);
    expect(ack.code, ack.stderr).toBe(0);
    expect(JSON.parse(ack.stdout)).toMatchObject({ reviewId: review.reviewId, acknowledged: true, by: 'dana@hospital.example' });
    await reviewAttribute('none');
    expect(await suite.db.selectFrom('monitoring_acknowledgements').selectAll().where('review_id', '=', review.reviewId).executeTakeFirst()).toMatchObject({
      acknowledged_by: 'dana@hospital.example',
    });
    const kinds = (await suite.db.selectFrom('audit_events').select('kind').where('workflow_id', '=', monitorWorkflowId(model)).execute()).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['monitoring.acknowledge-refused', 'monitoring.acknowledged']));

    const shown = await factoryCli(['monitor', 'status', model, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    const out = JSON.parse(shown.stdout) as { openReviews: unknown[]; reviews: Array<{ reviewId: string; open: boolean }>; windows: unknown[] };
    expect(out.openReviews).toEqual([]);
    expect(out.reviews[0]).toMatchObject({ reviewId: review.reviewId, open: false });
    expect(out.windows.length).toBeGreaterThan(2);
  });
});
