import type { Client } from '@temporalio/client';
import type { CheckpointSummary } from '../domain/checkpoint.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { ensureIntervalSchedule } from './schedules.ts';

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
  await ensureIntervalSchedule(client, {
    scheduleId: checkpointScheduleId(taskQueuePrefix),
    every: `${everyMinutes}m`,
    workflowType: 'auditCheckpoint',
    workflowId: `${checkpointScheduleId(taskQueuePrefix)}-run`,
    args: [{ reason: `schedule every ${everyMinutes}m` }],
    taskQueuePrefix,
    catchupWindow: '1 minute',
  });
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
