import { type TaskQueue, isGpuZoneQueue } from '../src/domain/task-queues.ts';
import * as audit from './audit.ts';
import * as checkpoint from './checkpoint.ts';
import * as datasets from './datasets.ts';
import * as evidence from './evidence.ts';
import * as governance from './governance.ts';
import * as history from './history.ts';
import * as placement from './placement.ts';
import * as monitoring from './monitoring.ts';
import * as policy from './policy.ts';
import * as promotion from './promotion.ts';
import * as provenance from './provenance.ts';
import * as registry from './registry.ts';
import * as retirement from './retirement.ts';
import * as revalidation from './revalidation.ts';
import * as rollback from './rollback.ts';
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
  ...revalidation,
  ...audit,
  ...checkpoint,
  ...history,
  zoneWorkers: placement.zoneWorkers,
  ...governance,
  ...monitoring,
  smokeRows: serving.smokeRows,
  signProvenance: provenance.signProvenance,
  exportEvidencePack: evidence.exportEvidencePack,
  planRollback: rollback.planRollback,
  switchRollbackRoute: rollback.switchRollbackRoute,
  recordRollbackRecovery: rollback.recordRollbackRecovery,
  switchShadowRoute: rollback.switchShadowRoute,
  recordDrill: rollback.recordDrill,
  promoteArtifact: promotion.promoteArtifact,
};
/** Activities of a GPU zone (gpu-onprem, gpu-burst …): training jobs and their evaluation. */
export const gpuActivities = { ...smoke, ...training };
/** Activities of the serving zone: Triton model control. */
export const servingActivities = {
  ...smoke,
  deployToTriton: serving.deployToTriton,
  unloadVersion: serving.unloadVersion,
  serveForRollback: rollback.serveForRollback,
  awaitFirstCorrectInference: rollback.awaitFirstCorrectInference,
  unloadShadow: rollback.unloadShadow,
};

/** A GPU zone's activities: each job is checked against the zone's allowed classifications before it runs. */
export function gpuActivitiesFor(zone: string): typeof gpuActivities {
  return {
    ...gpuActivities,
    trainModel: async (input) => {
      await placement.refuseOutsideZone(zone, input.schemaPath);
      return training.trainModel(input);
    },
    evaluateModel: async (input) => {
      await placement.refuseOutsideZone(zone, input.schemaPath);
      return training.evaluateModel(input);
    },
  };
}

/** What each zone's worker may run. A zone gets only the activities that touch its systems. */
export function activitiesFor(queue: TaskQueue) {
  if (isGpuZoneQueue(queue)) return gpuActivitiesFor(queue);
  switch (queue) {
    case 'control':
      return controlActivities;
    case 'serving':
      return servingActivities;
  }
}
