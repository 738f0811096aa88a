import { ApplicationFailure, Context } from '@temporalio/activity';
import { datasetSchemaSchema } from '../src/datasets/schema.ts';
import { MAX_SCHEMA_BYTES, inputLanes, readInput } from '../src/datasets/open-input.ts';
import type { DataClassification } from '../src/domain/classification.ts';
import { zoneMayRun } from '../src/placement/place.ts';
import { loadPolicyPack, policyPackPath } from '../src/policy/pack.ts';
import { activityDeps, activityTemporalClient } from './deps.ts';

/** temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY */
const TASK_QUEUE_TYPE_ACTIVITY = 2;
/**
 * A worker long-polls for about a minute and polls again at once: a poller not seen for 90 s is gone
 * (Temporal lists pollers for minutes after they stop).
 */
const LIVE_POLLER_SECONDS = 90;

/**
 * How many live workers poll each zone's queue (DescribeTaskQueue's pollers): what the lifecycle asks
 * before it schedules a job, so that it can say why it waits. `zones` are zone names, `prefix` the
 * deployment's queue prefix.
 */
export async function zoneWorkers(input: { prefix: string; zones: string[] }): Promise<Record<string, number>> {
  const { env } = activityDeps();
  const client = await activityTemporalClient();
  const live: Record<string, number> = {};
  for (const zone of input.zones.slice(0, 64)) {
    const res = await client.workflowService.describeTaskQueue({
      namespace: env.TEMPORAL_NAMESPACE,
      taskQueue: { name: `${input.prefix}${zone}` },
      taskQueueType: TASK_QUEUE_TYPE_ACTIVITY,
    });
    const now = Date.now() / 1000;
    live[zone] = (res.pollers ?? []).filter((p) => now - Number(p.lastAccessTime?.seconds ?? 0) < LIVE_POLLER_SECONDS).length;
  }
  return live;
}

/** The classification the dataset's schema declares, read by the zone's worker itself (not taken from the workflow). */
async function declaredClassification(schemaPath: string): Promise<DataClassification> {
  const { env, s3 } = activityDeps();
  const text = (await readInput(s3, schemaPath, 'schema', inputLanes(env), MAX_SCHEMA_BYTES)).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw ApplicationFailure.nonRetryable('the schema is not valid JSON', 'InvalidSchema');
  }
  const parsed = datasetSchemaSchema.safeParse(json);
  if (!parsed.success) throw ApplicationFailure.nonRetryable(`the schema is not valid: ${parsed.error.issues[0]?.message ?? 'invalid'}`, 'InvalidSchema');
  return parsed.data.classification;
}

/**
 * Defence in depth: a zone's worker refuses a job on data its zone may not hold, whatever the workflow
 * decided (a misconfigured or old workflow, a job sent to the queue by hand). The refusal is final
 * (non-retryable, type ZoneRefused): the lifecycle ends failed with it as the recorded cause.
 */
export async function refuseOutsideZone(zone: string, schemaPath: string): Promise<void> {
  const classification = await declaredClassification(schemaPath);
  const verdict = zoneMayRun(zone, { classification }, loadPolicyPack(policyPackPath()).pack.zones);
  if (!verdict.ok) {
    Context.current().log.warn('job refused by its zone', { zone, classification, reason: verdict.reason });
    throw ApplicationFailure.nonRetryable(`zone ${zone} refused the job: ${verdict.reason}`, 'ZoneRefused');
  }
}
