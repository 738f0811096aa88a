import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { ModelNameKey } from '../../temporal/search-attributes.ts';
import { RETIREMENT_WORKFLOW, type RetirementInput, type RetirementOutcome, retirementInputSchema, retirementWorkflowId } from '../domain/retirement.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { type FailureCause, rootCause } from './client.ts';

/**
 * Starts the retirement of one model version (`modelRetirement`), or finds the one running: the id
 * is `retire-<model>-<version>`, so a retried command never starts a second. A closed one (rejected,
 * failed) may be asked again: a new run under the same id (the workflow refuses a retired version).
 */
export async function startRetirement(
  client: Client,
  raw: RetirementInput,
  opts: { taskQueuePrefix?: string } = {},
): Promise<{ workflowId: string; runId: string; existing: boolean }> {
  const input = retirementInputSchema.parse(raw);
  const workflowId = retirementWorkflowId(input.modelName, input.version);
  const running = await client.workflow
    .getHandle(workflowId)
    .describe()
    .then(
      (d) => (d.status.name === 'RUNNING' ? d.runId : undefined),
      () => undefined,
    );
  if (running) return { workflowId, runId: running, existing: true };
  try {
    const handle = await client.workflow.start(RETIREMENT_WORKFLOW, {
      taskQueue: `${opts.taskQueuePrefix ?? ''}${TASK_QUEUES.control}`,
      workflowId,
      args: [input],
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: new TypedSearchAttributes([{ key: ModelNameKey, value: input.modelName }]),
      staticSummary: `retire ${input.modelName}@${input.version}`,
    });
    return { workflowId, runId: handle.firstExecutionRunId, existing: false };
  } catch (err) {
    // Another command started it a moment ago: that one is the retirement.
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const d = await client.workflow.getHandle(workflowId).describe();
    return { workflowId, runId: d.runId, existing: true };
  }
}

/** The retirement's outcome, or its root cause when it failed (refused: already retired, not retirable, unknown version). */
export async function retirementResult(client: Client, workflowId: string): Promise<{ outcome: RetirementOutcome } | { failure: FailureCause }> {
  try {
    return { outcome: (await client.workflow.getHandle(workflowId).result()) as RetirementOutcome };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    return { failure: err.cause ? rootCause(err.cause) : { type: 'Failed', message: err.message } };
  }
}
