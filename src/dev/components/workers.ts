import { Connection } from '@temporalio/client';
import { ALL_TASK_QUEUES } from '../../domain/task-queues.ts';
import type { Component, StackContext } from '../component.ts';
import { nodeEntrypoint } from '../node.ts';
import { ownedPid, processFiles, startDetached } from '../process.ts';

/** temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY */
const TASK_QUEUE_TYPE_ACTIVITY = 2;

/** Task queues that have at least one activity poller seen in the last minute. */
export async function pollingQueues(ctx: StackContext): Promise<string[]> {
  const connection = await Connection.connect({ address: ctx.env.TEMPORAL_ADDRESS, connectTimeout: 1_000 });
  try {
    const found: string[] = [];
    for (const name of ALL_TASK_QUEUES) {
      const res = await connection.workflowService.describeTaskQueue({
        namespace: ctx.env.TEMPORAL_NAMESPACE,
        taskQueue: { name },
        taskQueueType: TASK_QUEUE_TYPE_ACTIVITY,
      });
      const recent = (res.pollers ?? []).some((p) => {
        const seconds = Number(p.lastAccessTime?.seconds ?? 0);
        return Date.now() / 1000 - seconds < 60;
      });
      if (recent) found.push(name);
    }
    return found;
  } finally {
    await connection.close();
  }
}

/** The dev worker process: one worker per task queue (control, gpu-onprem, serving). */
export const workers: Component = {
  name: 'workers',
  startTimeoutMs: 90_000,
  hint: 'the worker log shows why it stopped; a code change needs `factory dev down && factory dev up` to reload workers',
  endpoint: () => ALL_TASK_QUEUES.join(','),
  async healthy(ctx) {
    // Temporal remembers a poller for minutes after its worker died, so pollers alone prove nothing:
    // the dev worker process must be ours and alive, and polling every queue.
    if (ownedPid(processFiles(ctx.env.FACTORY_HOME, 'workers')) === undefined) return false;
    try {
      const polling = await pollingQueues(ctx);
      return ALL_TASK_QUEUES.every((q) => polling.includes(q));
    } catch {
      return false;
    }
  },
  async start(ctx) {
    const { command, args } = nodeEntrypoint('workers/run.ts');
    startDetached(processFiles(ctx.env.FACTORY_HOME, 'workers'), command, args);
  },
};
