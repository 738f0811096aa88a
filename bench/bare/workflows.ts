import { proxyActivities } from '@temporalio/workflow';
import type * as activities from './activities.ts';

const { bareTrain, bareEvaluate } = proxyActivities<typeof activities>({ startToCloseTimeout: '30 minutes', retry: { maximumAttempts: 1 } });

/**
 * The governed lifecycle's baseline (bench/governed.ts): the same trainer and evaluator subprocesses
 * on the same data, with none of the governance (no quarantine, certification, manifests, registry,
 * audit, approval, digest checks, object storage or deployment).
 */
export async function bareTrainEvaluate(input: activities.BareInput): Promise<Record<string, number>> {
  const model = await bareTrain(input);
  return bareEvaluate({ ...input, model });
}
