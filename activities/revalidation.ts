import { ApplicationFailure } from '@temporalio/activity';
import { sql } from 'kysely';
import { appendAuditEventsIn } from '../src/audit/append.ts';
import type { ModelState } from '../src/db/schema.ts';
import type { DueRevalidation, RevalidationOutcome } from '../src/domain/revalidation.ts';
import { modelInventory } from '../src/inventory/inventory.ts';
import { loadPolicyPack, policyPackPath } from '../src/policy/pack.ts';
import { activityDeps } from './deps.ts';

/** Registry states whose validation must stand (the inventory's own list): only these are ever due. */
const IN_USE: ModelState[] = ['validated', 'approved', 'deployed', 'rolled-back'];

export interface DueListing {
  at: string;
  policyDigest: string;
  /** Versions overdue at `at` (all of them, also beyond `limit`). */
  total: number;
  /** At most `limit`, oldest due date first, each with what this due date already has. */
  due: Array<
    DueRevalidation & {
      /** A review for this due date that is open, revalidated or failed: nothing to start. */
      existingReview: string | null;
      /** Reviews for this due date that timed out undecided: the next one is attempt timedOut + 1. */
      timedOut: number;
    }
  >;
}

/**
 * Versions whose validation fell due, read through the inventory itself (src/inventory: the same
 * last validation and due date `factory inventory` prints), with the reviews each due date already has.
 */
export async function dueRevalidations(input: { modelName?: string; limit: number }): Promise<DueListing> {
  const { db } = activityDeps();
  const policy = loadPolicyPack(policyPackPath());
  const now = new Date();
  const limit = Math.max(1, Math.min(1000, Math.floor(input.limit)));
  const entries = await modelInventory(db, policy.pack, now, { ...(input.modelName ? { model: input.modelName } : {}), states: IN_USE });
  const overdue = entries
    .filter((e) => e.overdue && e.revalidationDueAt && e.lastValidatedAt)
    .sort((a, b) => a.revalidationDueAt!.localeCompare(b.revalidationDueAt!));
  const due: DueListing['due'] = [];
  for (const e of overdue.slice(0, limit)) {
    const ids = await sql<{ model_version_id: number; workflow_id: string | null; timed_out: string }>`
      SELECT m.id AS model_version_id,
        (SELECT r.workflow_id FROM revalidation_reviews r LEFT JOIN revalidation_outcomes o ON o.workflow_id = r.workflow_id
          WHERE r.model_version_id = m.id AND r.due_at = ${e.revalidationDueAt} AND (o.outcome IS NULL OR o.outcome <> 'timed-out')
          ORDER BY r.opened_at DESC LIMIT 1) AS workflow_id,
        (SELECT count(*) FROM revalidation_outcomes o JOIN revalidation_reviews r ON r.workflow_id = o.workflow_id
          WHERE r.model_version_id = m.id AND r.due_at = ${e.revalidationDueAt} AND o.outcome = 'timed-out') AS timed_out
      FROM model_versions m WHERE m.model_name = ${e.model} AND m.version = ${e.version}`.execute(db);
    const row = ids.rows[0];
    if (!row) continue;
    due.push({
      modelName: e.model,
      version: e.version,
      modelVersionId: row.model_version_id,
      riskTier: e.riskTier,
      lastValidatedAt: e.lastValidatedAt!,
      dueAt: e.revalidationDueAt!,
      existingReview: row.workflow_id,
      timedOut: Number(row.timed_out),
    });
  }
  return { at: now.toISOString(), policyDigest: policy.digest, total: overdue.length, due };
}

export interface RevalidationTarget {
  id: number;
  state: ModelState;
  riskTier: string;
  artifactDigest: string;
  developer: string;
}

/** The version a review names, as the registry has it now; an unknown one is final (`UnknownModelVersion`). */
export async function revalidationTarget(input: { modelName: string; version: number }): Promise<RevalidationTarget> {
  const { db } = activityDeps();
  const m = await db
    .selectFrom('model_versions')
    .select(['id', 'state', 'risk_tier', 'artifact_digest', 'developer'])
    .where('model_name', '=', input.modelName)
    .where('version', '=', input.version)
    .executeTakeFirst();
  if (!m) throw ApplicationFailure.nonRetryable(`no model version ${input.modelName}@${input.version} in the registry`, 'UnknownModelVersion');
  return { id: m.id, state: m.state, riskTier: m.risk_tier, artifactDigest: m.artifact_digest, developer: m.developer };
}

interface ReviewContext {
  workflowId: string;
  runId: string;
  modelVersionId: number;
  modelName: string;
  version: number;
  riskTier: string;
  dueAt: string;
  policyDigest: string;
}

/** Records the review (once: a retried attempt finds its row) with `model.revalidation-opened`, in one transaction. */
export async function openRevalidationReview(
  input: ReviewContext & { lastValidatedAt: string; requiredRoles: string[]; deadline: string; openedBy: string; openedAt: string },
): Promise<void> {
  const { db } = activityDeps();
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('revalidation_reviews')
      .values({
        workflow_id: input.workflowId,
        model_version_id: input.modelVersionId,
        model_name: input.modelName,
        version: input.version,
        risk_tier: input.riskTier,
        due_at: input.dueAt,
        last_validated_at: input.lastValidatedAt,
        required_roles: JSON.stringify(input.requiredRoles),
        deadline: input.deadline,
        policy_digest: input.policyDigest,
        run_id: input.runId,
        opened_at: input.openedAt,
      })
      .onConflict((oc) => oc.column('workflow_id').doNothing())
      .execute();
    await appendAuditEventsIn(tx, [
      {
        workflowId: input.workflowId,
        runId: input.runId,
        step: 'model.revalidation-opened',
        kind: 'model.revalidation-opened',
        actor: input.openedBy,
        payload: {
          modelVersionId: input.modelVersionId,
          modelName: input.modelName,
          version: input.version,
          riskTier: input.riskTier,
          dueAt: input.dueAt,
          lastValidatedAt: input.lastValidatedAt,
          requiredRoles: input.requiredRoles,
          deadline: input.deadline,
          policyDigest: input.policyDigest,
        },
        occurredAt: input.openedAt,
      },
    ]);
  });
}

/**
 * Records how a review ended, with its audit event, in one transaction: `model.revalidated` (the
 * validation renewed: the inventory's last validation from here on) or `model.revalidation-failed`
 * (rejected, or no decision before the deadline), which is a finding: the version stays overdue.
 */
export async function recordRevalidationOutcome(
  input: ReviewContext & {
    outcome: RevalidationOutcome;
    decidedBy: Array<{ approver: string; role: string; at: string }>;
    reason?: string;
    decidedAt: string;
  },
): Promise<void> {
  const { db } = activityDeps();
  const reason = input.reason?.slice(0, 2000);
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('revalidation_outcomes')
      .values({
        workflow_id: input.workflowId,
        model_version_id: input.modelVersionId,
        outcome: input.outcome,
        decided_by: JSON.stringify(input.decidedBy),
        reason: reason ?? null,
        run_id: input.runId,
        decided_at: input.decidedAt,
      })
      .onConflict((oc) => oc.column('workflow_id').doNothing())
      .execute();
    const kind = input.outcome === 'revalidated' ? 'model.revalidated' : 'model.revalidation-failed';
    await appendAuditEventsIn(tx, [
      {
        workflowId: input.workflowId,
        runId: input.runId,
        step: kind,
        kind,
        actor: input.decidedBy.at(-1)?.approver ?? 'factory',
        payload: {
          modelVersionId: input.modelVersionId,
          modelName: input.modelName,
          version: input.version,
          riskTier: input.riskTier,
          dueAt: input.dueAt,
          outcome: input.outcome,
          decidedBy: input.decidedBy,
          ...(input.outcome === 'revalidated' ? { validatedAt: input.decidedAt } : { finding: `revalidation-${input.outcome}` }),
          ...(reason ? { reason } : {}),
          policyDigest: input.policyDigest,
        },
        occurredAt: input.decidedAt,
      },
    ]);
  });
}
