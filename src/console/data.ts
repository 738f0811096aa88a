import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import type { KeyObject } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { newestCheckpoint } from '../audit/checkpoint.ts';
import { type SinceResult, verifyChainSince } from '../audit/since.ts';
import type { Database } from '../db/schema.ts';
import { LIFECYCLE_WORKFLOW } from '../lifecycle/client.ts';
import { RETIREMENT_WORKFLOW } from '../domain/retirement.ts';
import { LifecycleStageKey, ModelNameKey, PendingRolesKey, RiskTierKey } from '../../temporal/search-attributes.ts';
import type { RequestCounts } from './lineage.ts';

/** Requests counted per version before the count is shown as "≥ n": a page load stays quick on a busy model. */
export const REQUEST_COUNT_CAP = 100_000;

/** The gateway's logged requests for one version, by outcome (index gateway_requests_model_time, capped). */
export async function requestCounts(db: Kysely<Database>, model: string, version: number): Promise<RequestCounts> {
  const r = await sql<{ outcome: string; n: string }>`
    SELECT outcome, count(*)::text AS n FROM (
      SELECT outcome FROM gateway_requests WHERE model_name = ${model} AND model_version = ${version} LIMIT ${REQUEST_COUNT_CAP + 1}
    ) s GROUP BY outcome`.execute(db);
  const byOutcome = r.rows.map((x) => ({ outcome: x.outcome, count: Number(x.n) }));
  const total = byOutcome.reduce((n, x) => n + x.count, 0);
  return { byOutcome, capped: total > REQUEST_COUNT_CAP };
}

export interface PendingApproval {
  workflowId: string;
  runId: string;
  workflowType: string;
  modelName: string;
  riskTier: string;
  pendingRoles: string[];
  startTime: string;
}

/** Gates listed at most per page load: the visibility store answers this without any worker. */
export const PENDING_LIMIT = 200;

/**
 * Lifecycles and retirements waiting at their approval gate, from Temporal's visibility store (the
 * search attributes the workflows keep: LifecycleStage, PendingRoles): no query to a worker, so the
 * page answers while the workers are down.
 */
export async function pendingApprovals(client: Client): Promise<{ pending: PendingApproval[]; truncated: boolean }> {
  const query = `WorkflowType IN ('${LIFECYCLE_WORKFLOW}', '${RETIREMENT_WORKFLOW}') AND ExecutionStatus = 'Running' AND LifecycleStage = 'approval'`;
  const pending: PendingApproval[] = [];
  let truncated = false;
  await client.connection.withDeadline(Date.now() + 10_000, async () => {
    for await (const w of client.workflow.list({ query, pageSize: PENDING_LIMIT + 1 })) {
      if (pending.length === PENDING_LIMIT) {
        truncated = true;
        break;
      }
      const sa = w.typedSearchAttributes;
      if (sa.get(LifecycleStageKey) !== 'approval') continue;
      pending.push({
        workflowId: w.workflowId,
        runId: w.runId,
        workflowType: w.type,
        modelName: sa.get(ModelNameKey) ?? '',
        riskTier: sa.get(RiskTierKey) ?? '',
        pendingRoles: [...(sa.get(PendingRolesKey) ?? [])],
        startTime: w.startTime.toISOString(),
      });
    }
  });
  return { pending, truncated };
}

/** Pending gates grouped by the role they wait for (a gate waiting for two roles is under both). */
export function byRole(pending: readonly PendingApproval[]): Array<{ role: string; gates: PendingApproval[] }> {
  const roles = new Map<string, PendingApproval[]>();
  for (const p of pending)
    for (const role of p.pendingRoles.length ? p.pendingRoles : ['(no role pending: deciding)']) roles.set(role, [...(roles.get(role) ?? []), p]);
  return [...roles].sort(([a], [b]) => a.localeCompare(b)).map(([role, gates]) => ({ role, gates }));
}

export interface AuditStatus {
  location: string;
  checkpoint?: { seq: string; eventCount: number; createdAt: string; signedBy: string; key: string };
  invalid: Array<{ key: string; reason: string }>;
  since?: SinceResult;
  head?: { seq: string };
  /** Why the status could not be read (the evidence bucket down, no trusted key). */
  error?: string;
  millis: number;
}

/** Rows past the newest checkpoint checked per page load; the rest is `factory audit verify`'s. */
export const AUDIT_SINCE_MAX_ROWS = 20_000;

/**
 * The audit chain's status, bounded: the newest signed checkpoint (signature verified with the trusted
 * keys) and the chain from it to the head, at most AUDIT_SINCE_MAX_ROWS rows.
 */
export async function auditStatus(db: Kysely<Database>, s3: S3Client, bucket: string, chain: string, trusted: readonly KeyObject[]): Promise<AuditStatus> {
  const t0 = performance.now();
  const location = `s3://${bucket}/audit-checkpoints/${chain}/`;
  const millis = () => Math.round(performance.now() - t0);
  let found;
  try {
    found = await newestCheckpoint(s3, bucket, chain, trusted);
  } catch (err) {
    return { location, invalid: [], error: `the evidence bucket did not answer: ${(err as Error).message.slice(0, 300)}`, millis: millis() };
  }
  const head = await sql<{ seq: string }>`SELECT seq::text AS seq FROM audit_events ORDER BY audit_events.seq DESC LIMIT 1`.execute(db);
  const headRow = head.rows[0];
  if (!found.newest) return { location, invalid: found.invalid, ...(headRow ? { head: headRow } : {}), millis: millis() };
  const n = found.newest;
  const since = await verifyChainSince(db, n, { maxRows: AUDIT_SINCE_MAX_ROWS });
  return {
    location,
    checkpoint: { seq: n.seq, eventCount: n.eventCount, createdAt: n.createdAt, signedBy: n.signedBy, key: n.key },
    invalid: found.invalid,
    since,
    ...(headRow ? { head: headRow } : {}),
    millis: millis(),
  };
}
