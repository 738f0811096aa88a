import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DefaultLogger, NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { activitiesFor } from '../activities/index.ts';
import type { Env } from '../src/config/env.ts';
import { type TaskQueue, isGpuZoneQueue } from '../src/domain/task-queues.ts';
import { temporalCredentials } from '../src/temporal.ts';
import type { WorkerMetrics } from '../src/metrics/registry.ts';

const workflowsPath = path.join(path.dirname(fileURLToPath(import.meta.url)), '../workflows/index.ts');

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** Workflow code is bundled once per process and shared by every worker in it. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
  return bundle;
}

/** A worker for one task queue (zone). Only the control zone runs workflow code. */
export async function createWorker(env: Env, queue: TaskQueue, connection?: NativeConnection, metrics?: WorkerMetrics): Promise<Worker> {
  connection ??= await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS, ...temporalCredentials(env) });
  return Worker.create({
    connection,
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: `${env.FACTORY_TASK_QUEUE_PREFIX}${queue}`,
    activities: activitiesFor(queue),
    ...(queue === 'control' ? { workflowBundle: await workflowBundle() } : {}),
    // Each activity execution timed and counted (FACTORY_METRICS_PORT): the first argument tells an audit event's kind.
    ...(metrics
      ? {
          interceptors: {
            activity: [
              (ctx) => ({
                inbound: {
                  async execute(input, next) {
                    const t0 = performance.now();
                    try {
                      const out = await next(input);
                      metrics.activity(ctx.info.activityType, ctx.info.taskQueue, (performance.now() - t0) / 1000, true, input.args[0]);
                      return out;
                    } catch (err) {
                      metrics.activity(ctx.info.activityType, ctx.info.taskQueue, (performance.now() - t0) / 1000, false);
                      throw err;
                    }
                  },
                },
              }),
            ],
          },
        }
      : {}),
    // Each training or evaluation job is a process with its own memory and cores: cap how many one
    // worker runs at once (the rest wait in the task queue, where another worker may take them).
    ...(isGpuZoneQueue(queue) ? { maxConcurrentActivityTaskExecutions: env.FACTORY_GPU_MAX_CONCURRENT_JOBS } : {}),
  });
}
