import { ActivityFailure, ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { controlActivities } from '../activities/index.ts';
import { type LegalHoldResult, type RetentionReport, legalHoldInputSchema, retentionSweepInputSchema } from '../src/domain/governance.ts';
import { queuesFor } from '../src/domain/task-queues.ts';

/** Refusals of a hold action: recorded in the audit trail, then the workflow fails with them (never retried). */
const HOLD_REFUSALS = ['NotAuthorised', 'SamePrincipal', 'NoSuchHold', 'HoldConflict', 'NothingToHold', 'HoldTooLarge'];

function controlZone() {
  return proxyActivities<typeof controlActivities>({
    taskQueue: queuesFor(workflowInfo().taskQueue).control,
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
}

/**
 * Places or releases a legal hold (`factory hold place|release`). The activity does the work on S3 and
 * the registry; this records it in the audit trail, refusals included, under the principal who asked.
 */
export async function legalHold(raw: unknown): Promise<LegalHoldResult> {
  const parsed = legalHoldInputSchema.safeParse(raw);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid legal hold input: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      'InvalidInput',
    );
  }
  const input = parsed.data;
  const { workflowId, runId } = workflowInfo();
  const control = controlZone();
  const audit = (kind: string, payload: Record<string, unknown>) =>
    control.appendAudit({ workflowId, runId, step: kind, kind, actor: input.by, payload, occurredAt: new Date().toISOString() });
  try {
    const result = input.action === 'place' ? await control.placeLegalHold({ ...input, workflowId }) : await control.releaseLegalHold({ ...input, workflowId });
    await audit(input.action === 'place' ? 'legal-hold.placed' : 'legal-hold.released', { ...result, reason: input.reason });
    return result;
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type && HOLD_REFUSALS.includes(cause.type)) {
      await audit('legal-hold.refused', { caseId: input.caseId, action: input.action, by: input.by, refusal: cause.type, reason: cause.message });
      throw ApplicationFailure.nonRetryable(cause.message, cause.type);
    }
    throw err;
  }
}

/**
 * The retention job (schedule `retention-sweep`, or `factory retention report|run`): reports what is due
 * by record type and classification and, in `delete` mode, deletes what policy allows (retain-until
 * passed, no legal hold), each deletion leaving a tombstone; the sweep is recorded in the audit trail.
 */
export async function retentionSweep(raw: unknown): Promise<RetentionReport> {
  const parsed = retentionSweepInputSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid retention sweep input: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      'InvalidInput',
    );
  }
  const { workflowId, runId } = workflowInfo();
  const control = controlZone();
  const report = await control.sweepRetention({ ...parsed.data, sweepId: `${workflowId}/${runId}` });
  await control.appendAudit({
    workflowId,
    runId,
    step: 'retention.swept',
    kind: 'retention.swept',
    actor: 'factory',
    payload: { ...report },
    occurredAt: new Date().toISOString(),
  });
  return report;
}
