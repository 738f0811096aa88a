import { ApplicationFailure } from '@temporalio/activity';
import { sql } from 'kysely';
import { appendAuditEvent } from '../src/audit/append.ts';
import type { MonitorBreach, WindowResult } from '../src/domain/monitor.ts';
import { servingRoutes } from '../src/gateway/routes.ts';
import { DistributionUnreadable, loadDistribution } from '../src/monitoring/store.ts';
import { type WindowCounts, judgeWindow } from '../src/monitoring/window.ts';
import { loadPolicyPack, policyPackPath } from '../src/policy/pack.ts';
import { type MonitoringPolicy, type RiskTier, monitoringPolicySchema } from '../src/policy/schema.ts';
import { activityDeps } from './deps.ts';

interface AuditContext {
  workflowId: string;
  runId: string;
}

/**
 * The counts of one window of the request log for one version (partition-pruned by received_at,
 * indexed by model and time). `features` is the version's feature count: bins are stored row-major.
 */
async function windowCounts(modelName: string, modelVersionId: number, start: Date, end: Date, features: number, scoreEdges: number[]): Promise<WindowCounts> {
  const { db } = activityDeps();
  const scope = sql`model_name = ${modelName} AND received_at >= ${start} AND received_at < ${end} AND model_version_id = ${modelVersionId}`;
  const totals = await sql<{ requests: string; errors: string; p95: number | null; cells: string | null }>`
    SELECT count(*) AS requests,
           count(*) FILTER (WHERE status >= 500) AS errors,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE outcome = 'served') AS p95,
           sum(cardinality(feature_bins)) FILTER (WHERE outcome = 'served') AS cells
    FROM gateway_requests WHERE ${scope}`.execute(db);
  const t = totals.rows[0]!;
  const featureBins = await sql<{ feature: number; bin: number; count: string }>`
    SELECT ((u.i - 1) % ${features})::int AS feature, u.b::int AS bin, count(*) AS count
    FROM gateway_requests g, unnest(g.feature_bins) WITH ORDINALITY AS u(b, i)
    WHERE ${scope} AND outcome = 'served' AND cardinality(feature_bins) % ${features} = 0
    GROUP BY 1, 2`.execute(db);
  const scoreRows = await sql<{ bin: number; count: string; positives: string; confidence: number }>`
    SELECT width_bucket(s::float8, ${`{${scoreEdges.join(',')}}`}::float8[]) AS bin, count(*) AS count,
           count(*) FILTER (WHERE s >= 0.5) AS positives, sum(greatest(s, 1 - s)) AS confidence
    FROM gateway_requests g, unnest(g.scores) AS s
    WHERE ${scope} AND outcome = 'served'
    GROUP BY 1`.execute(db);
  return {
    requests: Number(t.requests),
    errors: Number(t.errors),
    latencyP95Ms: t.p95 === null ? null : Number(t.p95),
    rows: Math.floor(Number(t.cells ?? 0) / features),
    featureBins: featureBins.rows.map((r) => ({ feature: Number(r.feature), bin: Number(r.bin), count: Number(r.count) })),
    scoreBins: scoreRows.rows.map((r) => ({ bin: Number(r.bin), count: Number(r.count) })),
    scores: scoreRows.rows.reduce((a, r) => a + Number(r.count), 0),
    positives: scoreRows.rows.reduce((a, r) => a + Number(r.positives), 0),
    confidenceSum: scoreRows.rows.reduce((a, r) => a + Number(r.confidence), 0),
  };
}

/**
 * One monitor window [start, end) of a model: the version its route serves now, that version's
 * requests in the window (drift against its training distribution, prediction and confidence shift,
 * error rate, latency p95), judged by its tier's `monitoring` thresholds in the pack in force.
 * Recorded once (a retried attempt finds its row) in monitoring_windows and as a `monitoring.window`
 * audit event; a breach is named in both.
 */
export async function monitorWindow(input: AuditContext & { monitorId: string; modelName: string; start: string; end: string }): Promise<WindowResult> {
  const { db, s3, log } = activityDeps();
  const start = new Date(input.start);
  const end = new Date(input.end);
  const [route] = await servingRoutes(db, input.modelName);
  const loaded = loadPolicyPack(policyPackPath());
  const tierPolicy = route ? loaded.pack.riskTiers[route.riskTier as RiskTier] : undefined;
  const thresholds: MonitoringPolicy = tierPolicy?.monitoring ?? monitoringPolicySchema.parse({});
  let distributionDigest: string | null = null;
  let figures: Record<string, unknown> = { requests: 0, note: route ? undefined : 'no route: the model is not served' };
  let breaches: MonitorBreach[] = [];
  let requests = 0;
  let rows = 0;
  if (route) {
    let distribution;
    try {
      const d = await loadDistribution(db, s3, route.modelVersionId);
      distribution = d?.distribution;
      distributionDigest = d?.ref.digest ?? null;
    } catch (err) {
      if (!(err instanceof DistributionUnreadable)) throw err;
      log.warn({ model: input.modelName, err: err.message }, 'training distribution unreadable: drift not judged');
    }
    const counts = await windowCounts(
      input.modelName,
      route.modelVersionId,
      start,
      end,
      distribution?.features.length ?? 1,
      distribution?.score.edges ?? [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    );
    if (!distribution) counts.rows = 0;
    const judged = judgeWindow(counts, distribution, thresholds);
    figures = { ...judged.figures, version: route.version, riskTier: route.riskTier, routeState: route.routeState };
    breaches = judged.breaches;
    requests = counts.requests;
    rows = counts.rows;
  }
  const inserted = await db
    .insertInto('monitoring_windows')
    .values({
      monitor_id: input.monitorId,
      model_name: input.modelName,
      model_version_id: route?.modelVersionId ?? null,
      window_start: start,
      window_end: end,
      figures: JSON.stringify(figures),
      thresholds: JSON.stringify(thresholds),
      breaches: JSON.stringify(breaches),
      policy_digest: loaded.digest,
      distribution_digest: distributionDigest,
    })
    .onConflict((oc) => oc.columns(['monitor_id', 'window_start']).doNothing())
    .returning('id')
    .executeTakeFirst();
  const windowId =
    inserted?.id ??
    (
      await db
        .selectFrom('monitoring_windows')
        .select('id')
        .where('monitor_id', '=', input.monitorId)
        .where('window_start', '=', start)
        .executeTakeFirstOrThrow()
    ).id;
  await appendAuditEvent(db, {
    workflowId: input.workflowId,
    runId: input.runId,
    step: `window-${input.start}`,
    kind: breaches.length ? 'monitoring.breach' : 'monitoring.window',
    actor: 'deploymentMonitor',
    payload: { windowId: String(windowId), modelName: input.modelName, start: input.start, end: input.end, figures, breaches, policyDigest: loaded.digest },
    occurredAt: input.end,
  });
  return {
    windowId: String(windowId),
    modelVersionId: route?.modelVersionId ?? null,
    version: route?.version ?? null,
    riskTier: route?.riskTier ?? null,
    routeState: route?.routeState ?? null,
    requests,
    rows,
    breaches,
    autoRollback: thresholds.autoRollback,
  };
}

/** Records a review a breach raised (once: a retried attempt finds its row) and its audit event. */
export async function openMonitoringReview(
  input: AuditContext & {
    reviewId: string;
    monitorId: string;
    modelName: string;
    modelVersionId: number | null;
    windowId: string;
    breaches: MonitorBreach[];
    autoRollback: boolean;
    rollbackWorkflowId?: string;
    openedAt: string;
  },
): Promise<void> {
  const { db } = activityDeps();
  await db
    .insertInto('monitoring_reviews')
    .values({
      review_id: input.reviewId,
      monitor_id: input.monitorId,
      model_name: input.modelName,
      model_version_id: input.modelVersionId,
      window_id: input.windowId,
      breaches: JSON.stringify(input.breaches),
      auto_rollback: input.autoRollback,
      rollback_workflow_id: input.rollbackWorkflowId ?? null,
      opened_at: input.openedAt,
    })
    .onConflict((oc) => oc.column('review_id').doNothing())
    .execute();
  await appendAuditEvent(db, {
    workflowId: input.workflowId,
    runId: input.runId,
    step: `review-${input.reviewId}`,
    kind: 'monitoring.review-opened',
    actor: 'deploymentMonitor',
    payload: {
      reviewId: input.reviewId,
      modelName: input.modelName,
      modelVersionId: input.modelVersionId,
      windowId: input.windowId,
      breaches: input.breaches,
      autoRollback: input.autoRollback,
      ...(input.rollbackWorkflowId ? { rollbackWorkflowId: input.rollbackWorkflowId } : {}),
    },
    occurredAt: input.openedAt,
  });
}

/**
 * An acknowledgement of the open review: accepted only from a principal of the pack in force (the
 * closing of a review is attributed to a known person), recorded with its reason; a refusal is
 * recorded too (audit event `monitoring.acknowledge-refused`) and answered, never retried.
 */
export async function acknowledgeMonitoringReview(
  input: AuditContext & { reviewId: string | null; seq: number; by: string; reason: string; at: string },
): Promise<{ accepted: true } | { accepted: false; reason: string }> {
  const { db } = activityDeps();
  const { pack } = loadPolicyPack(policyPackPath());
  let refusal: string | undefined;
  if (!input.reviewId) refusal = 'no review is open';
  else if (!pack.principals.some((p) => p.id === input.by)) refusal = `${input.by} is not a principal of the policy pack in force`;
  if (refusal) {
    await appendAuditEvent(db, {
      workflowId: input.workflowId,
      runId: input.runId,
      step: `acknowledge-${input.seq}`,
      kind: 'monitoring.acknowledge-refused',
      actor: input.by,
      payload: { reviewId: input.reviewId, reason: input.reason, refused: refusal },
      occurredAt: input.at,
    });
    return { accepted: false, reason: refusal };
  }
  await db
    .insertInto('monitoring_acknowledgements')
    .values({ review_id: input.reviewId!, acknowledged_by: input.by, reason: input.reason, acknowledged_at: input.at })
    .onConflict((oc) => oc.column('review_id').doNothing())
    .execute();
  await appendAuditEvent(db, {
    workflowId: input.workflowId,
    runId: input.runId,
    step: `acknowledge-${input.seq}`,
    kind: 'monitoring.acknowledged',
    actor: input.by,
    payload: { reviewId: input.reviewId, reason: input.reason },
    occurredAt: input.at,
  });
  return { accepted: true };
}

/** A signal payload that is not an acknowledgement at all: recorded as refused (bounded excerpt), never retried. */
export async function recordMonitorRefusal(input: AuditContext & { seq: number; excerpt: string; reason: string; at: string }): Promise<void> {
  if (input.excerpt.length > 500) throw ApplicationFailure.nonRetryable('excerpt longer than 500 characters', 'InvalidInput');
  await appendAuditEvent(activityDeps().db, {
    workflowId: input.workflowId,
    runId: input.runId,
    step: `acknowledge-${input.seq}`,
    kind: 'monitoring.acknowledge-refused',
    actor: 'unknown',
    payload: { excerpt: input.excerpt, refused: input.reason },
    occurredAt: input.at,
  });
}
