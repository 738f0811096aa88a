import { proxyActivities } from '@temporalio/workflow';
import type * as activities from './activities.ts';

const { bareTrain, bareEvaluate, bareDeploy } = proxyActivities<typeof activities>({ startToCloseTimeout: '30 minutes', retry: { maximumAttempts: 1 } });

/**
 * The governed lifecycle's baseline as issue 12 defines it (bench/governed.ts): the same trainer and
 * evaluator subprocesses on the same data, with none of the governance (no quarantine,
 * certification, manifests, registry, audit, approval, digest checks, object storage or deployment).
 */
export async function bareTrainEvaluate(input: activities.BareInput): Promise<Record<string, number>> {
  const model = await bareTrain(input);
  return bareEvaluate({ ...input, model });
}

/**
 * The same, then a plain Triton deployment of the trained model (bareDeploy: repository entry and
 * load, nothing verified): the baseline that separates the governance's cost from the serving work.
 */
export async function bareTrainEvaluateDeploy(
  input: activities.BareInput & { deploy: { model: string; version: number; inputWidth: number } },
): Promise<Record<string, number>> {
  const model = await bareTrain(input);
  const metrics = await bareEvaluate({ ...input, model });
  await bareDeploy({ ...input.deploy, onnx: model });
  return metrics;
}
