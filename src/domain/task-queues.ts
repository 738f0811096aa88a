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
