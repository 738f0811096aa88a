import type { Client } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { REVALIDATION_SWEEP_WORKFLOW, type RevalidationSweepInput, type RevalidationSweepReport, revalidationScheduleId } from '../domain/revalidation.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { ensureIntervalSchedule } from './schedules.ts';

/**
 * Creates (or updates) the Temporal Schedule that runs `revalidationSweep` every `every` on the control
 * queue (schedule id `revalidation-sweep`, prefixed like the task queues). A sweep still running is not
 * doubled (overlap SKIP); one missed while the server was down is run once within a day of its time.
 */
export async function scheduleRevalidation(
  client: Client,
  { every, taskQueuePrefix = '' }: { every: string; taskQueuePrefix?: string },
): Promise<{ scheduleId: string; created: boolean }> {
  const scheduleId = revalidationScheduleId(taskQueuePrefix);
  const input: RevalidationSweepInput = {};
  return ensureIntervalSchedule(client, {
    scheduleId,
    every: every as Duration,
    workflowType: REVALIDATION_SWEEP_WORKFLOW,
    workflowId: `${scheduleId}-run`,
    args: [input],
    taskQueuePrefix,
    catchupWindow: '1 day',
  });
}

/** Runs a sweep now (`factory revalidation run`) and waits for its report. */
export async function sweepRevalidationsNow(client: Client, input: RevalidationSweepInput, taskQueuePrefix = ''): Promise<RevalidationSweepReport> {
  return client.workflow.execute(REVALIDATION_SWEEP_WORKFLOW, {
    workflowId: `${taskQueuePrefix}revalidation-sweep-${Date.now()}`,
    taskQueue: `${taskQueuePrefix}${TASK_QUEUES.control}`,
    args: [input],
    workflowExecutionTimeout: '30 minutes',
  });
}
