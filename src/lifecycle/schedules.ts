import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { TASK_QUEUES } from '../domain/task-queues.ts';

export interface IntervalSchedule {
  /** The schedule's id (stable API; callers prefix it like the task queues). */
  scheduleId: string;
  every: Duration;
  workflowType: string;
  /** Each run's workflow id (Temporal appends the start time). */
  workflowId: string;
  args: unknown[];
  taskQueuePrefix?: string;
  /** How late a run missed while the server was down may still start; later ones are skipped, the next covers them. */
  catchupWindow: Duration;
}

/**
 * Ensures a Temporal Schedule that starts a workflow on the control queue every `every`: created
 * if absent, else its interval and action are replaced (so a changed interval is applied). A run
 * still going is never doubled (overlap SKIP). Routine jobs (retention, audit checkpoints, drills)
 * all use this one definition.
 */
export async function ensureIntervalSchedule(client: Client, s: IntervalSchedule): Promise<{ scheduleId: string; created: boolean }> {
  const spec = { intervals: [{ every: s.every }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: s.workflowType,
    workflowId: s.workflowId,
    args: s.args,
    taskQueue: `${s.taskQueuePrefix ?? ''}${TASK_QUEUES.control}`,
  };
  try {
    await client.schedule.create({ scheduleId: s.scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: s.catchupWindow } });
    return { scheduleId: s.scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(s.scheduleId).update((prev) => ({ ...prev, spec, action }));
    return { scheduleId: s.scheduleId, created: false };
  }
}
