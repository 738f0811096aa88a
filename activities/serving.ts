import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/activity';
import { tritonPaths, tritonUrl } from '../src/dev/components/triton.ts';
import { TritonClient, writeRepositoryEntry } from '../src/serving/triton.ts';
import { bucket } from '../src/storage/s3.ts';
import { getBytes, sha256Digest } from '../src/storage/objects.ts';
import { activityDeps } from './deps.ts';

export interface DeployInput {
  modelVersionId: number;
  artifactKey: string;
  smokeInput: number[][];
}

export interface DeployResult {
  tritonModel: string;
  tritonVersion: number;
  endpoint: string;
  artifactDigest: string;
  smokeOutput: number[][];
}

/**
 * Deploys an approved version to Triton: the artifact's digest is checked against the registry (not
 * against what the caller says), the repository entry written, the version loaded and awaited, and a
 * smoke inference sent.
 */
export async function deployToTriton(input: DeployInput): Promise<DeployResult> {
  const { env, s3, db } = activityDeps();
  const mv = await db
    .selectFrom('model_versions')
    .select(['model_name', 'version', 'state', 'artifact_digest'])
    .where('id', '=', input.modelVersionId)
    .executeTakeFirstOrThrow();
  if (mv.state !== 'approved' && mv.state !== 'deployed') {
    throw ApplicationFailure.nonRetryable(`model version ${mv.model_name}@${mv.version} is ${mv.state}, not approved`, 'NotApproved');
  }
  const onnx = await getBytes(s3, bucket(env, 'artifacts'), input.artifactKey);
  const digest = sha256Digest(onnx);
  if (digest !== mv.artifact_digest) {
    throw ApplicationFailure.nonRetryable(`artifact ${input.artifactKey} is ${digest}, the registry holds ${mv.artifact_digest}: refusing to deploy`, 'TamperedArtifact');
  }
  const width = input.smokeInput[0]?.length ?? 0;
  writeRepositoryEntry({ repository: tritonPaths(env).modelRepository, model: mv.model_name, version: mv.version, onnx, inputWidth: width, outputWidth: 1 });
  const triton = new TritonClient(tritonUrl(env));
  await triton.load(mv.model_name);
  for (let i = 0; !(await triton.versionReady(mv.model_name, mv.version)); i++) {
    if (i > 120) throw ApplicationFailure.retryable(`${mv.model_name} version ${mv.version} not ready after loading`, 'NotReady');
    await sleep(500);
  }
  const { outputs } = await triton.infer(mv.model_name, input.smokeInput, mv.version);
  if (!outputs.every((row) => row.every((v) => Number.isFinite(v) && v >= 0 && v <= 1))) {
    throw ApplicationFailure.nonRetryable(`smoke inference returned ${JSON.stringify(outputs)}, not probabilities`, 'SmokeFailed');
  }
  return { tritonModel: mv.model_name, tritonVersion: mv.version, endpoint: `${tritonUrl(env)}/v2/models/${mv.model_name}/versions/${mv.version}/infer`, artifactDigest: digest, smokeOutput: outputs };
}

/** The first rows of the certified dataset as feature vectors, for the smoke inference. */
export async function smokeRows(input: { certifiedKey: string; rows: number }): Promise<number[][]> {
  const { env, s3 } = activityDeps();
  const text = (await getBytes(s3, bucket(env, 'certified'), input.certifiedKey)).toString('utf8');
  return text
    .trim()
    .split('\n')
    .slice(1, 1 + input.rows)
    .map((line) => line.split(',').slice(0, -1).map(Number));
}
