import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/smoke.ts';
import { queuesFor } from '../src/domain/task-queues.ts';

/** Benchmark baseline: a bare workflow running `count` no-op activities in sequence. */
export async function noopChain(count: number): Promise<void> {
  const { noop } = proxyActivities<typeof activities>({ taskQueue: queuesFor(workflowInfo().taskQueue).control, startToCloseTimeout: '10 seconds' });
  for (let i = 0; i < count; i++) await noop();
}
