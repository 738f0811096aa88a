import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { CheckpointSummary } from '../domain/checkpoint.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';

/** The schedule's id (stable API): one per task-queue prefix. */
export function checkpointScheduleId(taskQueuePrefix = ''): string {
  return `${taskQueuePrefix}audit-checkpoint`;
}

/**
 * Ensures the schedule that writes a signed checkpoint of the audit chain every `everyMinutes`
 * (workflow `auditCheckpoint` on the control queue; a run still going is not doubled, one missed
 * while the server was down is not caught up: the next covers it). Idempotent; a changed interval
 * is applied to the existing schedule.
 */
export async function ensureCheckpointSchedule(
  client: Client,
  { everyMinutes, taskQueuePrefix = '' }: { everyMinutes: number; taskQueuePrefix?: string },
): Promise<void> {
  const scheduleId = checkpointScheduleId(taskQueuePrefix);
  const every = `${everyMinutes}m`;
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'auditCheckpoint',
    workflowId: `${scheduleId}-run`,
    args: [{ reason: `schedule every ${every}` }],
    taskQueue: `${taskQueuePrefix}${TASK_QUEUES.control}`,
  };
  try {
    await client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every }] },
      action,
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec: { intervals: [{ every }] }, action }));
  }
}

/** Writes a checkpoint now (workflow `auditCheckpoint`) and waits for it. */
export async function checkpointNow(
  client: Client,
  { reason, taskQueuePrefix = '' }: { reason: string; taskQueuePrefix?: string },
): Promise<CheckpointSummary> {
  return client.workflow.execute('auditCheckpoint', {
    workflowId: `${taskQueuePrefix}audit-checkpoint-now-${Date.now()}`,
    taskQueue: `${taskQueuePrefix}${TASK_QUEUES.control}`,
    args: [{ reason }],
    workflowExecutionTimeout: '5 minutes',
  });
}
