import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.ts';
import { type Kpi, type KpiGoal, type KpiId, type KpiReport, kpiReportSchema } from '../domain/kpi.ts';
import { verifyHistories } from '../history/verify.ts';
import { type LoadedPolicyPack, loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { RISK_TIERS } from '../policy/schema.ts';
import { DEFAULT_SINCE, meets, parseSince, percentile, ratio } from './window.ts';

export type { Kpi, KpiId, KpiReport };
export { KPI_IDS, kpiReportSchema } from '../domain/kpi.ts';

/**
 * The seed's KPI table from recorded facts (registry rows, audit events, gateway request rows, rollback
 * recoveries, Temporal histories): never an estimate. docs/design.md ("KPIs") gives each figure's
 * definition and the facts it reads; README ("KPIs") the JSON. Read-only: works as factory_reader.
 */
export interface KpiOptions {
  /** Start of the window (default 30 days before now). */
  since?: Date;
  now?: Date;
  /** The pack whose goals apply (default: the pack in force). */
  policy?: LoadedPolicyPack;
  /**
   * For audit log completeness: where histories are read (exported objects by digest, else live from
   * Temporal), as `factory audit verify --history` reads them. Absent: that KPI is null (not checked).
   */
  histories?: { s3: S3Client; client?: Client };
  /** Only this model's facts (its versions, their lifecycles, its gateway requests, rollbacks and drills). */
  model?: string;
  /** Most lifecycles whose history is cross-checked (the newest in the window); default 200. */
  maxHistoryChecks?: number;
}

/** Audit kinds that record a refusal or a finding (each one a policy violation); approvals and gateway refusals are counted from their tables. */
export const VIOLATION_KINDS = ['provenance.refused', 'artifact.promotion-refused', 'monitoring.breach', 'monitoring.acknowledge-refused'] as const;
/** Gateway refusals that are policy (authentication, use case or tier not allowed), not malformed input or rate limits. */
export const POLICY_REFUSAL_STATUSES = [401, 403] as const;

const ALL: KpiGoal = { op: '>=', value: 1, source: 'the lifecycle allows no exception (100%)' };

function kpi(id: KpiId, title: string, k: Omit<Kpi, 'id' | 'title' | 'met'>): Kpi {
  return { id, title, ...k, met: meets(k.value, k.goal) };
}

/** A share the lifecycle allows no exception to: its value follows from what it counts, its goal is 100%. */
function shareKpi(id: KpiId, title: string, numerator: number, denominator: number, detail: Kpi['detail']): Kpi {
  return kpi(id, title, { value: ratio(numerator, denominator), unit: 'ratio', numerator, denominator, goal: ALL, detail });
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

export async function computeKpis(db: Kysely<Database>, opts: KpiOptions = {}): Promise<KpiReport> {
  const now = opts.now ?? new Date();
  const since = opts.since ?? parseSince(DEFAULT_SINCE, now);
  const policy = opts.policy ?? loadPolicyPack(policyPackPath());
  const tiers = policy.pack.riskTiers;
  const sinceIso = since.toISOString();
  const nowIso = now.toISOString();
  const model = opts.model;
  // Per-table scoping to one model (sql`` when none): m is model_versions, plain columns otherwise.
  const onM = model ? sql`AND m.model_name = ${model}` : sql``;
  const onName = model ? sql`AND model_name = ${model}` : sql``;
  const onWorkflow = (alias: string) =>
    model ? sql`AND ${sql.ref(`${alias}.workflow_id`)} IN (SELECT workflow_id FROM model_versions WHERE model_name = ${model})` : sql``;

  // Lineage: every version deployed in the window, by the criteria of docs/design.md ("KPIs").
  const lineage = (
    await sql<Record<string, number>>`
      WITH deployed AS (
        SELECT DISTINCT ON (d.model_version_id) d.model_version_id, d.artifact_digest
        FROM deployments d JOIN model_versions m ON m.id = d.model_version_id
        WHERE d.deployed_at >= ${since} AND d.deployed_at <= ${now} ${onM}
        ORDER BY d.model_version_id, d.deployed_at DESC),
      c AS (
        SELECT
          EXISTS (SELECT 1 FROM dataset_versions dv WHERE dv.manifest_digest = m.dataset_manifest_digest) AS dataset,
          EXISTS (SELECT 1 FROM audit_events e WHERE e.workflow_id = m.workflow_id AND e.kind = 'training.completed') AS training,
          (m.artifact_digest <> '' AND d.artifact_digest = m.artifact_digest) AS artifact,
          (m.provenance_digest IS NOT NULL AND m.provenance_key_id IS NOT NULL
            AND EXISTS (SELECT 1 FROM audit_events e WHERE e.workflow_id = m.workflow_id AND e.kind = 'provenance.signed')) AS provenance,
          COALESCE((
            SELECT jsonb_array_length(r.payload->'requiredRoles') > 0 AND NOT EXISTS (
              SELECT 1 FROM jsonb_array_elements_text(r.payload->'requiredRoles') AS req(role)
              WHERE NOT EXISTS (SELECT 1 FROM approvals a
                WHERE a.model_version_id = m.id AND a.accepted AND a.decision = 'approve' AND a.role = req.role))
            FROM audit_events r WHERE r.workflow_id = m.workflow_id AND r.kind = 'approval.requested'
              AND jsonb_typeof(r.payload->'requiredRoles') = 'array'
            ORDER BY r.seq DESC LIMIT 1), false) AS approvals
        FROM deployed d JOIN model_versions m ON m.id = d.model_version_id)
      SELECT count(*)::int AS total,
        count(*) FILTER (WHERE dataset AND training AND artifact AND provenance AND approvals)::int AS complete,
        count(*) FILTER (WHERE NOT dataset)::int AS "missingDataset",
        count(*) FILTER (WHERE NOT training)::int AS "missingTraining",
        count(*) FILTER (WHERE NOT artifact)::int AS "missingArtifact",
        count(*) FILTER (WHERE NOT provenance)::int AS "missingProvenance",
        count(*) FILTER (WHERE NOT approvals)::int AS "missingApprovals"
      FROM c`.execute(db)
  ).rows[0]!;

  // In production now: versions in state deployed, and those a live gateway route serves.
  const certified = (
    await sql<Record<string, number>>`
      WITH prod AS (
        SELECT id FROM model_versions WHERE state = 'deployed' ${onName}
        UNION SELECT model_version_id FROM gateway_routes WHERE state = 'live' ${onName}),
      c AS (
        SELECT
          EXISTS (SELECT 1 FROM dataset_versions dv WHERE dv.manifest_digest = m.dataset_manifest_digest AND dv.certified_uri <> '') AS dataset,
          EXISTS (SELECT 1 FROM audit_events e WHERE e.workflow_id = m.workflow_id AND e.kind = 'model.validated') AS validated,
          (m.artifact_digest <> ''
            AND NOT EXISTS (SELECT 1 FROM gateway_routes g WHERE g.model_version_id = m.id AND g.state = 'live' AND g.artifact_digest <> m.artifact_digest)
            AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.model_version_id = m.id AND d.artifact_digest <> m.artifact_digest)) AS artifact
        FROM prod JOIN model_versions m ON m.id = prod.id)
      SELECT count(*)::int AS total,
        count(*) FILTER (WHERE dataset AND validated AND artifact)::int AS certified,
        count(*) FILTER (WHERE NOT dataset)::int AS "uncertifiedDataset",
        count(*) FILTER (WHERE NOT validated)::int AS "notValidated",
        count(*) FILTER (WHERE NOT artifact)::int AS "artifactDiffers"
      FROM c`.execute(db)
  ).rows[0]!;

  const signed = (
    await sql<Record<string, number>>`
      SELECT count(*)::int AS total,
        count(*) FILTER (WHERE provenance_digest IS NOT NULL AND provenance_key_id IS NOT NULL AND provenance_uri IS NOT NULL)::int AS signed
      FROM model_versions WHERE created_at >= ${since} AND created_at <= ${now} ${onName}`.execute(db)
  ).rows[0]!;

  // A gate is an approval.requested event; it closed by the lifecycle's (or retirement's) verdict after it.
  const sla = (
    await sql<Record<string, number>>`
      WITH g AS (
        SELECT (r.payload->>'deadline') AS deadline, c.kind, c.payload->>'reason' AS reason, c.occurred_at
        FROM audit_events r
        LEFT JOIN LATERAL (
          SELECT kind, payload, occurred_at FROM audit_events c
          WHERE c.workflow_id = r.workflow_id AND c.seq > r.seq
            AND c.kind IN ('model.approved', 'model.rejected', 'model.retired', 'retirement.rejected')
          ORDER BY c.seq LIMIT 1) c ON true
        WHERE r.kind = 'approval.requested' AND r.occurred_at >= ${sinceIso} AND r.occurred_at <= ${nowIso} ${onWorkflow('r')})
      SELECT count(*) FILTER (WHERE kind IS NOT NULL)::int AS closed,
        count(*) FILTER (WHERE kind IS NOT NULL AND COALESCE(reason, '') NOT LIKE 'approval timed out%'
          AND (deadline IS NULL OR occurred_at <= deadline))::int AS "withinDeadline",
        count(*) FILTER (WHERE COALESCE(reason, '') LIKE 'approval timed out%')::int AS "timedOut",
        count(*) FILTER (WHERE kind IS NULL)::int AS open
      FROM g`.execute(db)
  ).rows[0]!;

  const recoveries = (
    await sql<{ rto_ms: number; risk_tier: string }>`
      SELECT rr.rto_ms, m.risk_tier FROM rollbacks r
      JOIN rollback_recoveries rr ON rr.rollback_id = r.id
      JOIN model_versions m ON m.id = r.from_version_id
      WHERE r.requested_at >= ${since} AND r.requested_at <= ${now} ${model ? sql`AND r.model_name = ${model}` : sql``}
      ORDER BY r.requested_at LIMIT 100000`.execute(db)
  ).rows;
  const rollbacksInWindow = num(
    (await sql<{ n: number }>`SELECT count(*)::int AS n FROM rollbacks WHERE requested_at >= ${since} AND requested_at <= ${now} ${onName}`.execute(db)).rows[0]
      ?.n,
  );
  const rtoGoalMs = (tier: string) => (tiers[tier as (typeof RISK_TIERS)[number]]?.rollbackRtoSeconds ?? 900) * 1000;
  const rtos = recoveries.map((r) => num(r.rto_ms));
  const withinRto = recoveries.filter((r) => num(r.rto_ms) <= rtoGoalMs(r.risk_tier)).length;
  const strictestRto = Math.min(...RISK_TIERS.map((t) => tiers[t].rollbackRtoSeconds));

  const inference = (
    await sql<Record<string, number | null>>`
      SELECT count(*)::int AS requests,
        count(*) FILTER (WHERE outcome = 'served')::int AS served,
        count(*) FILTER (WHERE outcome = 'refused')::int AS refused,
        count(*) FILTER (WHERE outcome = 'failed')::int AS failed,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE outcome = 'served') AS p50,
        percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE outcome = 'served') AS p95,
        max(latency_ms) FILTER (WHERE outcome = 'served') AS max
      FROM gateway_requests WHERE received_at >= ${since} AND received_at <= ${now} ${onName}`.execute(db)
  ).rows[0]!;
  const latencyGoals = RISK_TIERS.map((t) => tiers[t].monitoring?.maxLatencyP95Ms).filter((v): v is number => v !== undefined);

  const refusedDecisions = num(
    (
      await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM approvals a WHERE NOT a.accepted AND a.decided_at >= ${since} AND a.decided_at <= ${now}
          ${model ? sql`AND a.model_version_id IN (SELECT id FROM model_versions WHERE model_name = ${model})` : sql``}`.execute(db)
    ).rows[0]?.n,
  );
  const gatewayRefusals = num(
    (
      await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM gateway_requests
        WHERE outcome = 'refused' AND status IN (${sql.join([...POLICY_REFUSAL_STATUSES])})
          AND received_at >= ${since} AND received_at <= ${now} ${onName}`.execute(db)
    ).rows[0]?.n,
  );
  const byKind = (
    await sql<{ kind: string; n: number }>`
      SELECT e.kind, count(*)::int AS n FROM audit_events e
      WHERE e.kind IN (${sql.join([...VIOLATION_KINDS])}) AND e.occurred_at >= ${sinceIso} AND e.occurred_at <= ${nowIso}
        ${model ? sql`AND (e.payload->>'modelName' = ${model} OR e.workflow_id IN (SELECT workflow_id FROM model_versions WHERE model_name = ${model}))` : sql``}
      GROUP BY e.kind`.execute(db)
  ).rows;
  const failedDrills = num(
    (
      await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM rollback_drills WHERE verdict <> 'passed' AND finished_at >= ${since} AND finished_at <= ${now} ${onName}`.execute(db)
    ).rows[0]?.n,
  );
  const violationDetail: Record<string, number> = { refusedDecisions, gatewayPolicyRefusals: gatewayRefusals, failedDrills };
  for (const k of VIOLATION_KINDS) violationDetail[k] = num(byKind.find((r) => r.kind === k)?.n);
  const violations = Object.values(violationDetail).reduce((a, b) => a + b, 0);

  const audit = await auditCompleteness(db, opts, sinceIso, nowIso);

  const report: KpiReport = {
    asOf: nowIso,
    since: sinceIso,
    policyDigest: policy.digest,
    kpis: {
      lineageCompleteness: shareKpi(
        'lineageCompleteness',
        'Lineage completeness (versions deployed in the window)',
        num(lineage.complete),
        num(lineage.total),
        {
          missingDataset: num(lineage.missingDataset),
          missingTraining: num(lineage.missingTraining),
          missingArtifact: num(lineage.missingArtifact),
          missingProvenance: num(lineage.missingProvenance),
          missingApprovals: num(lineage.missingApprovals),
        },
      ),
      certifiedArtifactRate: shareKpi('certifiedArtifactRate', 'Certified artifact rate in production (now)', num(certified.certified), num(certified.total), {
        uncertifiedDataset: num(certified.uncertifiedDataset),
        notValidated: num(certified.notValidated),
        artifactDiffers: num(certified.artifactDiffers),
      }),
      signedArtifactCoverage: shareKpi(
        'signedArtifactCoverage',
        'Signed artifact coverage (versions registered in the window)',
        num(signed.signed),
        num(signed.total),
        { unsigned: num(signed.total) - num(signed.signed) },
      ),
      auditLogCompleteness: audit,
      approvalSlaAdherence: kpi('approvalSlaAdherence', "Approval SLA adherence (gates closed by a decision within the tier's deadline)", {
        value: ratio(num(sla.withinDeadline), num(sla.closed)),
        unit: 'ratio',
        numerator: num(sla.withinDeadline),
        denominator: num(sla.closed),
        goal: { op: '>=', value: 1, source: 'policy pack: riskTiers.<tier>.approvalTimeout (the deadline each gate recorded)' },
        detail: { timedOut: num(sla.timedOut), open: num(sla.open) },
      }),
      rollbackTime: kpi('rollbackTime', 'Rollback time (RTO p95, command to first correct inference)', {
        value: percentile(rtos, 0.95),
        unit: 'ms',
        numerator: withinRto,
        denominator: rtos.length,
        goal: { op: '<=', value: strictestRto * 1000, source: 'policy pack: riskTiers.<tier>.rollbackRtoSeconds (strictest tier)' },
        detail: {
          p50Ms: percentile(rtos, 0.5),
          p95Ms: percentile(rtos, 0.95),
          maxMs: rtos.length ? Math.max(...rtos) : null,
          rollbacks: rollbacksInWindow,
          unrecovered: rollbacksInWindow - rtos.length,
        },
        ...(rtos.length ? {} : { note: 'no recovered rollback in the window' }),
      }),
      inferenceP95: kpi('inferenceP95', 'Inference latency p95 (served gateway requests in the window)', {
        value: inference.p95 === null ? null : num(inference.p95),
        unit: 'ms',
        numerator: null,
        denominator: num(inference.served),
        goal: latencyGoals.length
          ? { op: '<=', value: Math.min(...latencyGoals), source: 'policy pack: riskTiers.<tier>.monitoring.maxLatencyP95Ms (strictest tier)' }
          : null,
        detail: {
          p50Ms: inference.p50 === null ? null : num(inference.p50),
          maxMs: inference.max === null ? null : num(inference.max),
          requests: num(inference.requests),
          served: num(inference.served),
          refused: num(inference.refused),
          failed: num(inference.failed),
        },
      }),
      policyViolations: kpi('policyViolations', 'Policy violations (refusals and findings recorded in the window)', {
        value: violations,
        unit: 'count',
        numerator: null,
        denominator: null,
        goal: null,
        detail: violationDetail,
      }),
    },
  };
  return kpiReportSchema.parse(report);
}

/**
 * Projection vs Temporal history, by the cross-check of `factory audit verify --history`
 * (src/history/verify.ts), for the lifecycles started in the window (the newest `maxHistoryChecks`).
 * A lifecycle is complete when its history is available and shows no discrepancy with the registry.
 */
async function auditCompleteness(db: Kysely<Database>, opts: KpiOptions, sinceIso: string, nowIso: string): Promise<Kpi> {
  const title = 'Audit log completeness (registry vs Temporal history, lifecycles started in the window)';
  const goal = ALL;
  const started = (
    await sql<{ workflow_id: string }>`
      SELECT workflow_id FROM audit_events
      WHERE kind = 'lifecycle.started' AND occurred_at >= ${sinceIso} AND occurred_at <= ${nowIso}
        ${opts.model ? sql`AND workflow_id IN (SELECT workflow_id FROM model_versions WHERE model_name = ${opts.model})` : sql``}
      GROUP BY workflow_id ORDER BY max(seq) DESC`.execute(db)
  ).rows.map((r) => r.workflow_id);
  if (!opts.histories)
    return kpi('auditLogCompleteness', title, {
      value: null,
      unit: 'ratio',
      numerator: null,
      denominator: null,
      goal,
      detail: { lifecycles: started.length },
      note: 'not checked: no history source (S3 and Temporal) was given',
    });
  const cap = opts.maxHistoryChecks ?? 200;
  let complete = 0;
  let available = 0;
  let unavailable = 0;
  let discrepancies = 0;
  for (const workflowId of started.slice(0, cap)) {
    const r = await verifyHistories(db, opts.histories.s3, opts.histories.client, { workflowId });
    if (r.unavailable) {
      unavailable++;
      continue;
    }
    available++;
    const bad = r.discrepancies.filter((d) => d.kind !== 'history-unavailable').length;
    discrepancies += bad;
    if (!bad) complete++;
  }
  return kpi('auditLogCompleteness', title, {
    value: ratio(complete, available),
    unit: 'ratio',
    numerator: complete,
    denominator: available,
    goal,
    detail: { lifecycles: started.length, checked: Math.min(cap, started.length), unavailable, discrepancies },
    ...(started.length > cap ? { note: `only the newest ${cap} of ${started.length} lifecycles were cross-checked` } : {}),
  });
}
