import { Connection } from '@temporalio/client';
import fs from 'node:fs';
import { projectRoot } from '../../config/env.ts';
import { ALL_TASK_QUEUES } from '../../domain/task-queues.ts';
import { newestSourceMtime } from '../newest-source.mjs';
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

/** The dev worker process writes its pid here once all its workers poll (workers/run.ts). */
function readyFile(ctx: StackContext): string {
  return processFiles(ctx.env.FACTORY_HOME, 'workers.ready').pidFile;
}

function readyPid(ctx: StackContext): number | undefined {
  try {
    return Number(fs.readFileSync(readyFile(ctx), 'utf8'));
  } catch {
    return undefined;
  }
}

/** The dev worker process: one worker per task queue (control, gpu-onprem, serving). */
export const workers: Component = {
  name: 'workers',
  startTimeoutMs: 90_000,
  hint: 'the worker log shows why it stopped',
  endpoint: () => ALL_TASK_QUEUES.join(','),
  async healthy(ctx) {
    // Temporal remembers a poller for minutes after its worker died, so pollers alone prove nothing:
    // the dev worker process must be ours and alive, and polling every queue.
    const files = processFiles(ctx.env.FACTORY_HOME, 'workers');
    const pid = ownedPid(files);
    if (pid === undefined || readyPid(ctx) !== pid) return false;
    // Workers load the code once: after a change they run the old one, so they count as down and
    // `dev up` restarts them (replay tests keep such a change safe for running lifecycles).
    if (fs.statSync(files.pidFile).mtimeMs < newestSourceMtime(projectRoot)) return false;
    try {
      const polling = await pollingQueues(ctx);
      return ALL_TASK_QUEUES.every((q) => polling.includes(q));
    } catch {
      return false;
    }
  },
  async start(ctx) {
    const { command, args } = nodeEntrypoint('workers/run.ts');
    fs.rmSync(readyFile(ctx), { force: true });
    startDetached(processFiles(ctx.env.FACTORY_HOME, 'workers'), command, args, { env: { ...process.env, FACTORY_WORKER_READY_FILE: readyFile(ctx) } });
  },
};
