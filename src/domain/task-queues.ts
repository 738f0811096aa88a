/**
 * Task queues are placement zones: a worker registers only what its zone may run, and policy decides
 * which queue a job may use. Stable API: workers in other deployments poll these names.
 */
export const TASK_QUEUES = {
  control: 'control',
  gpuOnprem: 'gpu-onprem',
  serving: 'serving',
} as const;

export type TaskQueue = (typeof TASK_QUEUES)[keyof typeof TASK_QUEUES];
export const ALL_TASK_QUEUES: TaskQueue[] = Object.values(TASK_QUEUES);

/**
 * The zones of one deployment. An isolated deployment (a test, a second tenant) prefixes every queue
 * the same way; a workflow finds its zones from the control queue it runs on, so it needs no config.
 */
export function queuesFor(controlQueue: string): { control: string; gpuOnprem: string; serving: string } {
  const prefix = controlQueue.endsWith(TASK_QUEUES.control) ? controlQueue.slice(0, -TASK_QUEUES.control.length) : '';
  return { control: `${prefix}${TASK_QUEUES.control}`, gpuOnprem: `${prefix}${TASK_QUEUES.gpuOnprem}`, serving: `${prefix}${TASK_QUEUES.serving}` };
}
