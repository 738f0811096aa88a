import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import type { ApprovalStatus, DecideUpdate } from '../domain/approval.ts';
import { decideUpdateSchema } from '../domain/approval.ts';
import { type LifecycleInput, type LifecycleOutcome, lifecycleInputSchema, lifecycleWorkflowId } from '../domain/lifecycle.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { ModelNameKey, RiskTierKey } from '../../temporal/search-attributes.ts';
import type { DecisionVerdict } from '../../workflows/lifecycle.ts';

export const LIFECYCLE_WORKFLOW = 'modelLifecycle';

/**
 * Starts the lifecycle for a model and commit, or finds the one already started for them: the
 * workflow id is derived from both, so a retried CI job never starts a second lifecycle.
 */
export async function startLifecycle(
  client: Client,
  raw: LifecycleInput,
  opts: { taskQueuePrefix?: string } = {},
): Promise<{ workflowId: string; runId: string; existing: boolean }> {
  const input = lifecycleInputSchema.parse(raw);
  const workflowId = lifecycleWorkflowId(input.modelName, input.commitSha);
  try {
    const handle = await client.workflow.start(LIFECYCLE_WORKFLOW, {
      taskQueue: `${opts.taskQueuePrefix ?? ''}${TASK_QUEUES.control}`,
      workflowId,
      args: [input],
      // Running or closed, a lifecycle with this id is the one: never a second.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: new TypedSearchAttributes([
        { key: ModelNameKey, value: input.modelName },
        { key: RiskTierKey, value: input.riskTier },
      ]),
      staticSummary: `${input.modelName} @ ${input.commitSha.slice(0, 12)} (${input.riskTier} risk)`,
    });
    return { workflowId, runId: handle.firstExecutionRunId, existing: false };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const desc = await client.workflow.getHandle(workflowId).describe();
      return { workflowId, runId: desc.runId, existing: true };
    }
    throw err;
  }
}

export async function lifecycleResult(client: Client, workflowId: string): Promise<LifecycleOutcome> {
  return client.workflow.getHandle(workflowId).result() as Promise<LifecycleOutcome>;
}

export async function approvalStatus(client: Client, workflowId: string): Promise<ApprovalStatus> {
  return client.workflow.getHandle(workflowId).query<ApprovalStatus>('approvalStatus');
}

export class DecisionRefused extends Error {
  override name = 'DecisionRefused';
}

/** Sends a decision through the `decide` update and returns the workflow's verdict. */
export async function decide(client: Client, workflowId: string, raw: DecideUpdate): Promise<DecisionVerdict> {
  const update = decideUpdateSchema.parse(raw);
  try {
    return await client.workflow.getHandle(workflowId).executeUpdate<DecisionVerdict, [DecideUpdate]>('decide', { args: [update] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new DecisionRefused((err.cause as Error | undefined)?.message ?? err.message);
    throw err;
  }
}
