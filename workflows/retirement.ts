import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { controlActivities, servingActivities } from '../activities/index.ts';
import { LifecycleStageKey, ModelNameKey, PendingRolesKey, RiskTierKey } from '../temporal/search-attributes.ts';
import type { ApprovalStatus } from '../src/domain/approval.ts';
import { MODEL_STATE_TRANSITIONS } from '../src/domain/model-state.ts';
import {
  type RetirementCheckpoint,
  type RetirementInput,
  type RetirementOutcome,
  type RetirementStage,
  retirementInputSchema,
} from '../src/domain/retirement.ts';
import { queuesFor } from '../src/domain/task-queues.ts';
import { durationMs } from '../src/policy/schema.ts';
import { ApprovalGate, type LoadedPolicy } from './approval-gate.ts';
import { startArchiverOnClose } from './history-archiver.ts';
import { approvalStatusQuery } from './lifecycle.ts';

/**
 * Retires one model version (issue 9 item 6), approved per its risk tier by the same gate as its
 * release: the tier's approver roles from the policy pack, signed where the tier requires, the
 * requester (and the version's developer) barred from approving. Only once approved: retention of the
 * version's evidence is extended to run from the retirement date, the registry moves it to `retired`
 * and the gateway route naming it to `retired` (410 with the reason) in one transaction with the
 * audit event `model.retired`, and then Triton unloads it. Rejected or timed out: nothing changes.
 * Either way its history is exported as evidence when it closes (the lifecycle's archiver).
 * The `approvalStatus` query and the `approve`/`reject`/`withdraw` signals and `decide` update are the
 * lifecycle's, so `factory status|approve|reject` and the Web UI work on a retirement as on a lifecycle.
 */
export async function modelRetirement(rawInput: RetirementInput, checkpoint?: RetirementCheckpoint): Promise<RetirementOutcome> {
  const parsed = retirementInputSchema.safeParse(rawInput);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid retirement: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`,
      'InvalidInput',
    );
  }
  const input = parsed.data;
  const { workflowId, runId, taskQueue } = workflowInfo();
  const zones = queuesFor(taskQueue);
  // Registry and audit writes retry without limit: a database outage is waited out, not failed.
  const control = proxyActivities<typeof controlActivities>({
    taskQueue: zones.control,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds' },
  });
  // The version is already refused by the gateway when this runs: a Triton outage is waited out too.
  const serving = proxyActivities<typeof servingActivities>({
    taskQueue: zones.serving,
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds' },
  });
  const now = () => new Date().toISOString();
  const appendAudit = (step: string, kind: string, payload: Record<string, unknown>, actor = 'factory') =>
    control.appendAudit({ workflowId, runId, step, kind, actor, payload, occurredAt: now() });

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
  const enter = (stage: RetirementStage, details: string) => {
    status.stage = stage;
    upsertSearchAttributes([{ key: LifecycleStageKey, value: stage }]);
    setCurrentDetails(details);
  };
  const gate = new ApprovalGate(
    {
      workflowId,
      runId,
      status,
      now,
      records: control,
      audit: appendAudit,
    },
    checkpoint?.gate,
  );
  if (checkpoint && !workflowInfo().continuedFromExecutionRunId) {
    throw ApplicationFailure.nonRetryable('a retirement checkpoint is accepted only from its own previous run (continue-as-new)', 'InvalidInput');
  }

  const target = await control.retirementTarget({ modelName: input.modelName, version: input.version });
  status.riskTier = target.riskTier;
  status.modelDigest = target.artifactDigest;
  upsertSearchAttributes([
    { key: ModelNameKey, value: input.modelName },
    { key: RiskTierKey, value: target.riskTier },
  ]);
  if (target.state === 'retired') {
    throw ApplicationFailure.nonRetryable(`${input.modelName}@${input.version} is already retired`, 'AlreadyRetired');
  }
  if (!MODEL_STATE_TRANSITIONS[target.state].includes('retired')) {
    throw ApplicationFailure.nonRetryable(
      `${input.modelName}@${input.version} is ${target.state}: only an approved, deployed or rolled-back version is retired (a version still in its lifecycle ends with it)`,
      'NotRetirable',
    );
  }

  let policy: LoadedPolicy;
  let deadlineMs: number;
  if (checkpoint) {
    policy = checkpoint.policy;
    deadlineMs = checkpoint.deadlineMs;
    status.continuedRuns = checkpoint.continuedRuns;
  } else {
    const loaded = await control.loadPolicy();
    policy = { pack: loaded.pack, digest: loaded.digest };
    deadlineMs = Date.now() + durationMs(policy.pack.riskTiers[target.riskTier as 'low'].approvalTimeout);
    await appendAudit(
      'retirement.requested',
      'retirement.requested',
      { modelVersionId: target.id, modelName: input.modelName, version: input.version, from: target.state, reason: input.reason, policyDigest: policy.digest },
      input.requestedBy,
    );
  }
  const tier = policy.pack.riskTiers[target.riskTier as 'low'];

  enter('approval', `Waiting for approval to retire ${input.modelName}@${input.version}: ${input.reason}`);
  const result = await gate.await(
    {
      modelDigest: target.artifactDigest,
      requester: input.requestedBy,
      developer: target.developer,
      requiredRoles: tier.approverRoles,
      requireSignature: tier.requireSignature ?? false,
    },
    target.id,
    policy,
    deadlineMs,
    { onRejection: tier.onRejection, resumed: !!checkpoint },
  );
  if ('continueAsNew' in result) {
    return continueAsNew<typeof modelRetirement>(rawInput, {
      gate: result.continueAsNew,
      policy,
      deadlineMs,
      continuedRuns: (checkpoint?.continuedRuns ?? 0) + 1,
    });
  }
  upsertSearchAttributes([{ key: PendingRolesKey, value: [] }]);

  if (!result.approved) {
    const reason =
      'rejectedBy' in result
        ? `rejected by ${result.rejectedBy.principalName} <${result.rejectedBy.approver}> as ${result.rejectedBy.role}${result.rejectedBy.comment ? `: ${result.rejectedBy.comment}` : ''}`
        : `approval timed out after ${tier.approvalTimeout}; still pending: ${status.pendingRoles.join(', ')}`;
    await appendAudit('retirement.rejected', 'retirement.rejected', { modelVersionId: target.id, version: input.version, reason });
    status.outcome = `rejected: ${reason}`;
    enter('rejected', `Not retired: ${reason}`);
    await archiveOnClose();
    await gate.refuseLeftovers(target.id, policy);
    await condition(allHandlersFinished);
    return { outcome: 'rejected', modelName: input.modelName, version: input.version, reason };
  }

  enter('retiring', `Retiring ${input.modelName}@${input.version}`);
  const retiredAt = now();
  const retention = await control.extendRetentionFromRetirement({ modelVersionId: target.id, retiredAt });
  const recorded = await control.recordRetirement({
    workflowId,
    runId,
    modelVersionId: target.id,
    reason: input.reason,
    requestedBy: input.requestedBy,
    retiredAt,
    retention,
    policyDigest: policy.digest,
    approvals: status.approvals.map((a) => ({ approver: a.approver, role: a.role, at: a.at })),
  });
  // The gateway refuses it from here on (within its 1 s route cache); Triton stops serving it next.
  const unloaded = await serving.unloadVersion({ modelVersionId: target.id });
  await appendAudit('serving.unloaded', 'serving.unloaded', { modelVersionId: target.id, version: input.version, ...unloaded });
  status.outcome = 'retired';
  enter('retired', `Retired ${input.modelName}@${input.version}: ${input.reason}`);
  await anchorChain(zones.control, `retirement: ${workflowId}`);
  await archiveOnClose();
  await gate.refuseLeftovers(target.id, policy);
  await condition(allHandlersFinished);
  return {
    outcome: 'retired',
    modelName: input.modelName,
    version: input.version,
    retiredAt,
    routeRetired: recorded.routeRetired,
    unloaded: unloaded.unloaded,
    retention,
  };
}

/** A signed checkpoint of the audit chain's head at once (as a lifecycle's end writes one); a failure leaves it to the schedule. */
async function anchorChain(queue: string, reason: string): Promise<void> {
  const control = proxyActivities<typeof controlActivities>({
    taskQueue: queue,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 10 },
  });
  try {
    await CancellationScope.nonCancellable(() => control.writeAuditCheckpoint({ reason }));
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
  }
}

/** Retirements that close after this change export their history (the first retirements on main did not). */
export const RETIREMENT_HISTORY_EXPORT_PATCH = 'retirement-history-export';

/**
 * The retirement's history is evidence of its approval, as a lifecycle's is: the archiver (started as
 * it closes, ABANDON) stores every run of its chain under Object Lock once it has closed. One that
 * cannot start is logged; `factory history export` does the same work.
 */
async function archiveOnClose(): Promise<void> {
  if (!patched(RETIREMENT_HISTORY_EXPORT_PATCH)) return;
  await startArchiverOnClose('retirement');
}
