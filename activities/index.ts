import type { TaskQueue } from '../src/domain/task-queues.ts';
import * as smoke from './smoke.ts';

/** What each zone's worker may run. A zone gets only the activities that touch its systems. */
export function activitiesFor(queue: TaskQueue): Record<string, (...args: never[]) => Promise<unknown>> {
  switch (queue) {
    case 'control':
      return { ...smoke };
    case 'gpu-onprem':
      return { ...smoke };
    case 'serving':
      return { ...smoke };
  }
}
