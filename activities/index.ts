import type { TaskQueue } from '../src/domain/task-queues.ts';
import * as audit from './audit.ts';
import * as checkpoint from './checkpoint.ts';
import * as datasets from './datasets.ts';
import * as history from './history.ts';
import * as policy from './policy.ts';
import * as provenance from './provenance.ts';
import * as registry from './registry.ts';
import * as retirement from './retirement.ts';
import * as serving from './serving.ts';
import * as smoke from './smoke.ts';
import * as training from './training.ts';

/** Activities of the control zone: policy, data, registry and audit. */
export const controlActivities = {
  ...smoke,
  ...policy,
  ...datasets,
  ...registry,
  ...retirement,
  ...audit,
  ...checkpoint,
  ...history,
  smokeRows: serving.smokeRows,
  signProvenance: provenance.signProvenance,
};
/** Activities of the on-prem GPU zone: training jobs and their evaluation. */
export const gpuActivities = { ...smoke, ...training };
/** Activities of the serving zone: Triton model control. */
export const servingActivities = { ...smoke, deployToTriton: serving.deployToTriton, unloadVersion: serving.unloadVersion };

/** What each zone's worker may run. A zone gets only the activities that touch its systems. */
export function activitiesFor(queue: TaskQueue) {
  switch (queue) {
    case 'control':
      return controlActivities;
    case 'gpu-onprem':
      return gpuActivities;
    case 'serving':
      return servingActivities;
  }
}
