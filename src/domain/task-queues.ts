/**
 * Task queues are placement zones: a worker registers only what its zone may run, and policy decides
 * which queue a job may use. Stable API: workers in other deployments poll these names.
 */
export const TASK_QUEUES = {
  control: 'control',
  gpuOnprem: 'gpu-onprem',
  serving: 'serving',
} as const;
/**
 * A burst GPU zone (cloud or partner site): the policy pack says which data classifications it may hold.
 * Not in TASK_QUEUES: the smoke workflow pings each of those, and a deployment need not run a burst zone.
 */
export const GPU_BURST_QUEUE = 'gpu-burst';

/** A GPU zone's queue: `gpu-<name>`, listed with its attributes in the policy pack's `zones`. */
export type GpuZoneQueue = `gpu-${string}`;
export type TaskQueue = 'control' | 'serving' | GpuZoneQueue;
/** The queues one `factory dev up` worker process polls. Other GPU zones (gpu-burst) run workers of their own. */
export const ALL_TASK_QUEUES: TaskQueue[] = [TASK_QUEUES.control, TASK_QUEUES.gpuOnprem, TASK_QUEUES.serving];

export function isGpuZoneQueue(queue: string): queue is GpuZoneQueue {
  return queue.startsWith('gpu-');
}

/** The deployment prefix of a control queue ('' when none): every zone of the deployment shares it. */
export function queuePrefix(controlQueue: string): string {
  return controlQueue.endsWith(TASK_QUEUES.control) ? controlQueue.slice(0, -TASK_QUEUES.control.length) : '';
}

/**
 * The zones of one deployment. An isolated deployment (a test, a second tenant) prefixes every queue
 * the same way; a workflow finds its zones from the control queue it runs on, so it needs no config.
 */
export function queuesFor(controlQueue: string): { control: string; gpuOnprem: string; serving: string } {
  const prefix = queuePrefix(controlQueue);
  return { control: `${prefix}${TASK_QUEUES.control}`, gpuOnprem: `${prefix}${TASK_QUEUES.gpuOnprem}`, serving: `${prefix}${TASK_QUEUES.serving}` };
}
