import {
  ApplicationFailure,
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { controlActivities } from '../activities/index.ts';
import { LifecycleStageKey, ModelNameKey, PendingRolesKey, RevalidationReviewKey, RiskTierKey } from '../temporal/search-attributes.ts';
import type { ApprovalStatus } from '../src/domain/approval.ts';
import {
  DEFAULT_REVALIDATOR_ROLES,
  REVALIDATION_REVIEW_WORKFLOW,
  type RevalidationCheckpoint,
  type RevalidationOutcome,
  type RevalidationReviewInput,
  type RevalidationReviewResult,
  type RevalidationSweepReport,
  SWEEP_MAX_REVIEWS,
  revalidationReviewInputSchema,
  revalidationSweepInputSchema,
  revalidationWorkflowId,
} from '../src/domain/revalidation.ts';
import { queuesFor } from '../src/domain/task-queues.ts';
import { durationMs } from '../src/policy/schema.ts';
import { ApprovalGate, type LoadedPolicy } from './approval-gate.ts';
import { approvalStatusQuery } from './lifecycle.ts';

function invalid(what: string, issues: Array<{ path: PropertyKey[]; message: string }>): never {
  throw ApplicationFailure.nonRetryable(`invalid ${what}: ${issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`, 'InvalidInput');
}

/** Registry and audit writes retry without limit: a database outage is waited out, not failed. */
function control() {
  return proxyActivities<typeof controlActivities>({
    taskQueue: queuesFor(workflowInfo().taskQueue).control,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds' },
  });
}

/**
 * The revalidation sweep (schedule `revalidation-sweep`, or `factory revalidation run`): lists the
 * versions whose validation fell due, through the inventory itself, and starts one `revalidationReview`
 * per version and due date. Its id is derived from both and a duplicate is refused by Temporal
 * (REJECT_DUPLICATE) and skipped by the listing (a review row for that due date), so a sweep run twice
 * starts one review. Reviews outlive the sweep (ParentClosePolicy ABANDON). Recorded as `revalidation.swept`.
 */
export async function revalidationSweep(raw: unknown): Promise<RevalidationSweepReport> {
  const parsed = revalidationSweepInputSchema.safeParse(raw ?? {});
  if (!parsed.success) invalid('revalidation sweep input', parsed.error.issues);
  const { workflowId, runId } = workflowInfo();
  const activities = control();
  const listing = await activities.dueRevalidations({ ...(parsed.data.modelName ? { modelName: parsed.data.modelName } : {}), limit: SWEEP_MAX_REVIEWS });
  const opened: string[] = [];
  const existing: string[] = [];
  for (const d of listing.due) {
    if (d.existingReview) {
      existing.push(d.existingReview);
      continue;
    }
    // After a review timed out undecided, the next sweep asks again (attempt 2, 3, …), never twice at once.
    // Not prefixed by the task queue's prefix: a replay runs on another queue, and the id must come out the same.
    const base = revalidationWorkflowId(d.modelName, d.version, d.dueAt);
    const id = d.timedOut > 0 ? `${base}-r${d.timedOut + 1}` : base;
    const input: RevalidationReviewInput = {
      modelName: d.modelName,
      version: d.version,
      dueAt: d.dueAt,
      lastValidatedAt: d.lastValidatedAt,
      openedBy: REVALIDATION_SWEEP_ACTOR,
    };
    try {
      await startChild(REVALIDATION_REVIEW_WORKFLOW, {
        workflowId: id,
        args: [input],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      });
      opened.push(id);
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      existing.push(id);
    }
  }
  const report: RevalidationSweepReport = { at: listing.at, due: listing.total, opened, existing, truncated: listing.total > listing.due.length };
  await activities.appendAudit({
    workflowId,
    runId,
    step: 'revalidation.swept',
    kind: 'revalidation.swept',
    actor: 'factory',
    payload: { ...report, ...(parsed.data.modelName ? { modelName: parsed.data.modelName } : {}), policyDigest: listing.policyDigest },
    occurredAt: new Date().toISOString(),
  });
  return report;
}

/** The actor recorded for a review the sweep opened. */
export const REVALIDATION_SWEEP_ACTOR = 'revalidationSweep';

/**
 * One revalidation review (SR 11-7 periodic review): records `model.revalidation-opened` (due date,
 * tier, the roles asked) with its registry row, sets `RevalidationReview=open`, and waits at the same
 * approval gate as a release (the `approve`/`reject`/`withdraw` signals, the `decide` update and the
 * `approvalStatus` query: `factory approve|reject|status <workflowId>` work on it) for every role of
 * the tier's `revalidatorRoles` (default `validator`), signed where the tier requires, the version's
 * developer barred, until the tier's `approvalTimeout`. Approved: `model.revalidated`, whose time is
 * the version's new last validation. Rejected or timed out: `model.revalidation-failed`, a finding;
 * the version stays overdue (a timed-out review is opened again by the next sweep).
 */
export async function revalidationReview(rawInput: RevalidationReviewInput, checkpoint?: RevalidationCheckpoint): Promise<RevalidationReviewResult> {
  const parsed = revalidationReviewInputSchema.safeParse(rawInput);
  if (!parsed.success) invalid('revalidation review input', parsed.error.issues);
  const input = parsed.data;
  const { workflowId, runId } = workflowInfo();
  const activities = control();
  const now = () => new Date().toISOString();
  const appendAudit = (step: string, kind: string, payload: Record<string, unknown>, actor = 'factory') =>
    activities.appendAudit({ workflowId, runId, step, kind, actor, payload, occurredAt: now() });

  const status: ApprovalStatus = {
    stage: 'check',
    waiting: false,
    modelName: input.modelName,
    version: input.version,
    riskTier: '',
    requiredRoles: [],
    pendingRoles: [],
    approvals: [],
    refusals: [],
  };
  setHandler(approvalStatusQuery, () => status);
  const enter = (stage: string, review: 'open' | RevalidationOutcome, details: string) => {
    status.stage = stage;
    upsertSearchAttributes([
      { key: LifecycleStageKey, value: stage },
      { key: RevalidationReviewKey, value: review },
    ]);
    setCurrentDetails(details);
  };
  const gate = new ApprovalGate(
    {
      workflowId,
      runId,
      status,
      now,
      records: activities,
      audit: appendAudit,
    },
    checkpoint?.gate,
  );
  if (checkpoint && !workflowInfo().continuedFromExecutionRunId) {
    throw ApplicationFailure.nonRetryable('a revalidation checkpoint is accepted only from its own previous run (continue-as-new)', 'InvalidInput');
  }

  const target = await activities.revalidationTarget({ modelName: input.modelName, version: input.version });
  status.riskTier = target.riskTier;
  status.modelDigest = target.artifactDigest;
  upsertSearchAttributes([
    { key: ModelNameKey, value: input.modelName },
    { key: RiskTierKey, value: target.riskTier },
  ]);

  let policy: LoadedPolicy;
  let deadlineMs: number;
  const tierOf = (p: LoadedPolicy) => p.pack.riskTiers[target.riskTier as 'low'];
  const context = () => ({
    workflowId,
    runId,
    modelVersionId: target.id,
    modelName: input.modelName,
    version: input.version,
    riskTier: target.riskTier,
    dueAt: input.dueAt,
    policyDigest: policy.digest,
  });
  if (checkpoint) {
    policy = checkpoint.policy;
    deadlineMs = checkpoint.deadlineMs;
    status.continuedRuns = checkpoint.continuedRuns;
  } else {
    const loaded = await activities.loadPolicy();
    policy = { pack: loaded.pack, digest: loaded.digest };
    if (!tierOf(policy)) throw ApplicationFailure.nonRetryable(`the policy pack has no risk tier ${target.riskTier}`, 'InvalidPolicyPack');
    // The same deadline as the tier's release approvals: a review is no less urgent than a release.
    deadlineMs = Date.now() + durationMs(tierOf(policy).approvalTimeout);
    await activities.openRevalidationReview({
      ...context(),
      lastValidatedAt: input.lastValidatedAt,
      requiredRoles: tierOf(policy).revalidatorRoles ?? DEFAULT_REVALIDATOR_ROLES,
      deadline: new Date(deadlineMs).toISOString(),
      openedBy: input.openedBy,
      openedAt: now(),
    });
  }
  const tier = tierOf(policy);
  const roles = tier.revalidatorRoles ?? DEFAULT_REVALIDATOR_ROLES;

  enter(
    'approval',
    'open',
    `Revalidation of ${input.modelName}@${input.version} (${target.riskTier} risk), due ${input.dueAt}: waiting for ${roles.join(', ')}`,
  );
  const result = await gate.await(
    {
      modelDigest: target.artifactDigest,
      requester: input.openedBy,
      developer: target.developer,
      requiredRoles: roles,
      requireSignature: tier.requireSignature ?? false,
    },
    target.id,
    policy,
    deadlineMs,
    { onRejection: tier.onRejection, resumed: !!checkpoint },
  );
  if ('continueAsNew' in result) {
    return continueAsNew<typeof revalidationReview>(rawInput, {
      gate: result.continueAsNew,
      policy,
      deadlineMs,
      continuedRuns: (checkpoint?.continuedRuns ?? 0) + 1,
    });
  }
  upsertSearchAttributes([{ key: PendingRolesKey, value: [] }]);

  const decidedAt = now();
  let outcome: RevalidationOutcome;
  let reason: string | undefined;
  let decidedBy = status.approvals.map((a) => ({ approver: a.approver, role: a.role, at: a.at }));
  if (result.approved) outcome = 'revalidated';
  else if ('rejectedBy' in result) {
    outcome = 'failed';
    const r = result.rejectedBy;
    decidedBy = [{ approver: r.approver, role: r.role, at: r.at }];
    reason = `rejected by ${r.principalName} <${r.approver}> as ${r.role}${r.comment ? `: ${r.comment}` : ''}`;
  } else {
    outcome = 'timed-out';
    reason = `no decision within ${tier.approvalTimeout}; still pending: ${status.pendingRoles.join(', ')}`;
  }
  await activities.recordRevalidationOutcome({ ...context(), outcome, decidedBy, ...(reason ? { reason } : {}), decidedAt });
  status.outcome = reason ? `${outcome}: ${reason}` : outcome;
  enter(outcome, outcome, `Revalidation of ${input.modelName}@${input.version}: ${status.outcome}`);
  await gate.refuseLeftovers(target.id, policy);
  await condition(allHandlersFinished);
  return {
    outcome,
    modelName: input.modelName,
    version: input.version,
    dueAt: input.dueAt,
    ...(outcome === 'revalidated' ? { revalidatedAt: decidedAt } : {}),
    ...(reason ? { reason } : {}),
  };
}
