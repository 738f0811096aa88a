import { proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/smoke.ts';
import { TASK_QUEUES } from '../src/domain/task-queues.ts';

/** Proves the stack end to end: a workflow on the server runs an activity on each zone's worker. */
export async function smokeTest(greeting: string): Promise<string[]> {
  const answers: string[] = [];
  for (const taskQueue of Object.values(TASK_QUEUES)) {
    const { ping } = proxyActivities<typeof activities>({ taskQueue, startToCloseTimeout: '10 seconds' });
    answers.push(await ping(greeting));
  }
  return answers;
}
