import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.ts';

/** One revalidation review as the registry records it (`factory revalidation status`). */
export interface RevalidationReviewRow {
  workflowId: string;
  model: string;
  version: number;
  riskTier: string;
  dueAt: string;
  lastValidatedAt: string;
  requiredRoles: string[];
  deadline: string;
  openedAt: string;
  /** `open` until a decision (or the deadline) closes it. */
  outcome: 'open' | 'revalidated' | 'failed' | 'timed-out';
  decidedAt: string | null;
  decidedBy: Array<{ approver: string; role: string; at: string }>;
  reason: string | null;
}

/** The newest reviews first (at most `limit`, at most 1000), of one model or version when named. */
export async function revalidationReviews(
  db: Kysely<Database>,
  filter: { model?: string; version?: number; limit?: number } = {},
): Promise<RevalidationReviewRow[]> {
  const limit = Math.max(1, Math.min(1000, filter.limit ?? 100));
  const rows = await sql<{
    workflow_id: string;
    model_name: string;
    version: number;
    risk_tier: string;
    due_at: Date;
    last_validated_at: Date;
    required_roles: string[];
    deadline: Date;
    opened_at: Date;
    outcome: RevalidationReviewRow['outcome'] | null;
    decided_at: Date | null;
    decided_by: RevalidationReviewRow['decidedBy'] | null;
    reason: string | null;
  }>`
    SELECT r.workflow_id, r.model_name, r.version, r.risk_tier, r.due_at, r.last_validated_at, r.required_roles, r.deadline,
      r.opened_at, o.outcome, o.decided_at, o.decided_by, o.reason
    FROM revalidation_reviews r LEFT JOIN revalidation_outcomes o ON o.workflow_id = r.workflow_id
    WHERE true
      ${filter.model ? sql`AND r.model_name = ${filter.model}` : sql``}
      ${filter.version ? sql`AND r.version = ${filter.version}` : sql``}
    ORDER BY r.opened_at DESC LIMIT ${limit}`.execute(db);
  const iso = (d: Date | string) => new Date(d).toISOString();
  return rows.rows.map((r) => ({
    workflowId: r.workflow_id,
    model: r.model_name,
    version: r.version,
    riskTier: r.risk_tier,
    dueAt: iso(r.due_at),
    lastValidatedAt: iso(r.last_validated_at),
    requiredRoles: r.required_roles,
    deadline: iso(r.deadline),
    openedAt: iso(r.opened_at),
    outcome: r.outcome ?? 'open',
    decidedAt: r.decided_at ? iso(r.decided_at) : null,
    decidedBy: r.decided_by ?? [],
    reason: r.reason,
  }));
}
