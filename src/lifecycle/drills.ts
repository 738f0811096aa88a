import type { Client } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { DRILL_WORKFLOW, type DrillInput, type DrillOutcome, drillScheduleId, drillWorkflowId } from '../domain/rollback.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { ensureIntervalSchedule } from './schedules.ts';

/** `--every`: a whole number of hours or days, from 1 hour to 366 days (a drill loads two versions: not a per-minute job). */
export const DRILL_EVERY = /^([1-9][0-9]{0,3})(h|d)$/;

export function drillEveryHours(every: string): number | undefined {
  const m = DRILL_EVERY.exec(every);
  if (!m) return undefined;
  const hours = Number(m[1]) * (m[2] === 'd' ? 24 : 1);
  return hours >= 1 && hours <= 366 * 24 ? hours : undefined;
}

/**
 * Creates (or updates) the Temporal Schedule that runs `rollbackDrill` for a model every `every`
 * (schedule id `drill-<model>`, prefixed like the task queues). A drill still running is not doubled
 * (overlap SKIP); one missed while the server was down is run once within a day of its time.
 */
export async function scheduleDrill(
  client: Client,
  { modelName, every, requestedBy, taskQueuePrefix = '' }: { modelName: string; every: string; requestedBy: string; taskQueuePrefix?: string },
): Promise<{ scheduleId: string; created: boolean }> {
  const scheduleId = drillScheduleId(modelName, taskQueuePrefix);
  const input: DrillInput = { modelName, requestedBy, reason: `scheduled drill every ${every} (schedule ${scheduleId})` };
  return ensureIntervalSchedule(client, {
    scheduleId,
    every: every as Duration,
    workflowType: DRILL_WORKFLOW,
    workflowId: `drill-${modelName}-scheduled`,
    args: [input],
    taskQueuePrefix,
    catchupWindow: '1 day',
  });
}

/** Runs one drill now and waits for its verdict. */
export async function runDrill(
  client: Client,
  { input, unique, taskQueuePrefix = '' }: { input: DrillInput; unique: string; taskQueuePrefix?: string },
): Promise<DrillOutcome> {
  return client.workflow.execute(DRILL_WORKFLOW, {
    workflowId: drillWorkflowId(input.modelName, unique),
    taskQueue: `${taskQueuePrefix}${TASK_QUEUES.control}`,
    args: [input],
    workflowExecutionTimeout: '30 minutes',
  });
}
