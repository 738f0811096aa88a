import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { ModelNameKey } from '../../temporal/search-attributes.ts';
import { PROMOTION_WORKFLOW, type PromotionInput, type PromotionOutcome, promotionInputSchema, promotionWorkflowId } from '../domain/promotion.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { type FailureCause, rootCause } from './client.ts';

/**
 * Starts `artifactPromotion` for one version and site, or finds the one running (id
 * `promote-<model>-<version>-<site>`): a retried command never starts a second. A closed one may be
 * asked again (a promotion copies content-addressed objects: the same bytes add no new version).
 */
export async function startPromotion(
  client: Client,
  raw: PromotionInput,
  opts: { taskQueuePrefix?: string } = {},
): Promise<{ workflowId: string; existing: boolean }> {
  const input = promotionInputSchema.parse(raw);
  const workflowId = promotionWorkflowId(input);
  try {
    await client.workflow.start(PROMOTION_WORKFLOW, {
      taskQueue: `${opts.taskQueuePrefix ?? ''}${TASK_QUEUES.control}`,
      workflowId,
      args: [input],
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: new TypedSearchAttributes([{ key: ModelNameKey, value: input.modelName }]),
      staticSummary: `promote ${input.modelName}@${input.version} to ${input.toSite}`,
    });
    return { workflowId, existing: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return { workflowId, existing: true };
  }
}

/** The promotion's outcome, or its root cause when it was refused or failed. */
export async function promotionResult(client: Client, workflowId: string): Promise<{ outcome: PromotionOutcome } | { failure: FailureCause }> {
  try {
    return { outcome: (await client.workflow.getHandle(workflowId).result()) as PromotionOutcome };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    return { failure: err.cause ? rootCause(err.cause) : { type: 'Failed', message: err.message } };
  }
}
