import { ApplicationFailure, proxyActivities, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { controlActivities } from '../activities/index.ts';
import { ModelNameKey } from '../temporal/search-attributes.ts';
import { type PromotionInput, type PromotionOutcome, promotionInputSchema } from '../src/domain/promotion.ts';
import { queuesFor } from '../src/domain/task-queues.ts';

/**
 * Promotes one model version's artifact to another site (issue 10 item 2, seed pattern 3): the
 * activity re-verifies its signed provenance and artifact digest (the deployment's own check), copies
 * both under Object Lock and records `artifact_promotions` with `artifact.promoted`. A refusal (site or
 * purpose the pack does not allow, provenance that does not verify, tampered artifact) is recorded as
 * `artifact.promotion-refused` and fails the workflow for good: retrying cannot make it verify.
 */
export async function artifactPromotion(rawInput: PromotionInput): Promise<PromotionOutcome> {
  const parsed = promotionInputSchema.safeParse(rawInput);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid promotion: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`,
      'InvalidInput',
    );
  }
  const input = parsed.data;
  const { workflowId, runId, taskQueue } = workflowInfo();
  // Store and database outages are waited out, not failed.
  const control = proxyActivities<typeof controlActivities>({
    taskQueue: queuesFor(taskQueue).control,
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds' },
  });
  upsertSearchAttributes([{ key: ModelNameKey, value: input.modelName }]);
  setCurrentDetails(`Promoting ${input.modelName}@${input.version} to ${input.toSite} for ${input.purpose}`);
  const verdict = await control.promoteArtifact({ ...input, workflowId, runId });
  if (!verdict.ok) {
    await control.appendAudit({
      workflowId,
      runId,
      step: 'artifact.promotion-refused',
      kind: 'artifact.promotion-refused',
      actor: input.requestedBy,
      payload: {
        modelName: input.modelName,
        version: input.version,
        toSite: input.toSite,
        purpose: input.purpose,
        type: verdict.type,
        reason: verdict.reason,
        ...verdict.details,
      },
      occurredAt: new Date().toISOString(),
    });
    setCurrentDetails(`Refused: ${verdict.reason}`);
    throw ApplicationFailure.nonRetryable(`promotion of ${input.modelName}@${input.version} to ${input.toSite} refused: ${verdict.reason}`, verdict.type);
  }
  setCurrentDetails(`Promoted ${input.modelName}@${input.version} to ${input.toSite}`);
  return verdict.outcome;
}
