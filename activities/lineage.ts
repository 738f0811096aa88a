import { Context } from '@temporalio/activity';
import { type Facet, type OlDataset, runEvent, runUuid } from '../src/lineage/openlineage.ts';
import { sendRunEvent } from '../src/lineage/transport.ts';
import { activityDeps } from './deps.ts';

/** What a stage read and wrote, and what its run carries, as far as it is known at that moment. */
export interface StageLineage {
  inputs?: OlDataset[];
  outputs?: OlDataset[];
  runFacets?: Record<string, Facet>;
}

/**
 * Runs one stage of an activity between its OpenLineage events: START before, COMPLETE with what it
 * produced, or FAIL with the error's message (then the error goes on unchanged). Each attempt is its
 * own run (a retry is a new run of the same job) whose parent is the lifecycle's Temporal run.
 * Emission never changes the stage's outcome: an unreachable lineage endpoint is logged, not retried.
 */
export async function withLineage<T>(
  job: string,
  start: StageLineage,
  stage: () => Promise<T>,
  done: (result: T) => StageLineage | Promise<StageLineage>,
): Promise<T> {
  const { env, log } = activityDeps();
  if (env.FACTORY_OPENLINEAGE_TRANSPORT === 'off') return stage();
  // Called outside an activity (a bulk fill, a direct call in a test) or by a standalone activity
  // (no workflow): there is no run to be a child of, so nothing is emitted; the stage runs as ever.
  let info: ReturnType<typeof Context.current>['info'];
  try {
    info = Context.current().info;
  } catch {
    return stage();
  }
  if (!info.workflowExecution) return stage();
  const { workflowId, runId } = info.workflowExecution;
  const olRunId = runUuid(workflowId, runId, info.activityId, String(info.attempt));
  const emit = async (eventType: 'START' | 'COMPLETE' | 'FAIL', io: StageLineage, error?: string) => {
    try {
      await sendRunEvent(
        env,
        runEvent({
          eventType,
          eventTime: new Date().toISOString(),
          runId: olRunId,
          namespace: env.FACTORY_OPENLINEAGE_NAMESPACE,
          job,
          parent: { runId, job: workflowId },
          ...io,
          ...(error !== undefined ? { error } : {}),
        }),
      );
    } catch (err) {
      log.warn({ err: String(err), job, eventType }, 'OpenLineage event not sent');
    }
  };
  await emit('START', start);
  let result: T;
  try {
    result = await stage();
  } catch (err) {
    await emit(
      'FAIL',
      start,
      err instanceof Error ? `${err.name === 'ApplicationFailure' && 'type' in err && err.type ? `${String(err.type)}: ` : ''}${err.message}` : String(err),
    );
    throw err;
  }
  let io: StageLineage;
  try {
    io = await done(result);
  } catch (err) {
    log.warn({ err: String(err), job }, 'OpenLineage facets of a completed stage could not be built');
    io = start;
  }
  await emit('COMPLETE', io);
  return result;
}
