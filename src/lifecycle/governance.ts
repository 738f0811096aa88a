import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowIdReusePolicy } from '@temporalio/client';
import { type LegalHoldInput, type LegalHoldResult, type RetentionReport, type RetentionSweepInput, legalHoldWorkflowId } from '../domain/governance.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { ensureIntervalSchedule } from './schedules.ts';

/** The retention job's schedule id (stable API): one per task-queue prefix. */
export function retentionScheduleId(taskQueuePrefix = ''): string {
  return `${taskQueuePrefix}retention-sweep`;
}

/**
 * Ensures the routine retention job: workflow `retentionSweep` in delete mode every `everyHours` on the
 * control queue (a sweep still running is not doubled; one missed while the server was down is not
 * caught up, the next covers it). Idempotent; a changed interval is applied.
 */
export async function ensureRetentionSchedule(
  client: Client,
  { everyHours, taskQueuePrefix = '' }: { everyHours: number; taskQueuePrefix?: string },
): Promise<void> {
  await ensureIntervalSchedule(client, {
    scheduleId: retentionScheduleId(taskQueuePrefix),
    every: `${everyHours}h`,
    workflowType: 'retentionSweep',
    workflowId: `${retentionScheduleId(taskQueuePrefix)}-run`,
    args: [{ mode: 'delete' }],
    taskQueuePrefix,
    catchupWindow: '1 minute',
  });
}

/** Runs a sweep now (`factory retention report|run`) and waits for its report. */
export async function sweepNow(client: Client, input: RetentionSweepInput, taskQueuePrefix = ''): Promise<RetentionReport> {
  return client.workflow.execute('retentionSweep', {
    workflowId: `${taskQueuePrefix}retention-${input.mode}-${Date.now()}`,
    taskQueue: `${taskQueuePrefix}${TASK_QUEUES.control}`,
    args: [input],
    workflowExecutionTimeout: '2 hours',
  });
}

/**
 * Places or releases a hold and waits for it. One place and one release per case: a retried command
 * finds the one that completed and returns its result (`existing`); one that failed (refused) may be
 * run again, e.g. a release by the right principal after one by the wrong one.
 */
export async function holdAction(client: Client, input: LegalHoldInput, taskQueuePrefix = ''): Promise<LegalHoldResult> {
  const workflowId = legalHoldWorkflowId(input.caseId, input.action, taskQueuePrefix);
  try {
    return await client.workflow.execute('legalHold', {
      workflowId,
      taskQueue: `${taskQueuePrefix}${TASK_QUEUES.control}`,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      workflowExecutionTimeout: '2 hours',
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const done = (await client.workflow.getHandle(workflowId).result()) as LegalHoldResult;
    return { ...done, existing: true };
  }
}
