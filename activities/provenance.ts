import { ApplicationFailure } from '@temporalio/activity';
import { projectRoot } from '../src/config/env.ts';
import { buildProvenanceStatement, signProvenanceStatement } from '../src/provenance/statement.ts';
import { sourceDigest } from '../src/provenance/source-digest.ts';
import { SigningKeyError, loadFactoryKey } from '../src/signing/factory-key.ts';
import { putOnce } from '../src/storage/objects.ts';
import { retainUntilInForce } from '../src/policy/pack.ts';
import { bucket } from '../src/storage/s3.ts';
import type { TrainingMeasurements } from './training.ts';
import { activityDeps } from './deps.ts';

/** The evaluator the factory runs on the GPU zone (activities/training.ts evaluateModel): its script and the module it imports. */
export const EVALUATOR_ID = 'urn:ai-factory:evaluator:trainers/evaluate.py';
const EVALUATOR_FILES = ['trainers/common.py', 'trainers/evaluate.py'];

export interface SignProvenanceInput {
  workflowId: string;
  runId: string;
  modelName: string;
  riskTier: string;
  artifact: { key: string; uri: string; digest: string };
  dataset: { name: string; rawUri: string; rawSha256: string; manifestUri: string; manifestDigest: string; certifiedUri: string; certifiedSha256: string };
  commitSha: string;
  imageDigest: string;
  training: { epochs: number; seed: number };
  measured?: TrainingMeasurements;
  policy: { digest: string; source: string; version: string };
  /** The task queues the lifecycle trained and evaluated on (the builder's identity). */
  queues: { gpu: string };
  /** From the workflow's clock: when training was scheduled and when its result arrived. */
  startedOn: string;
  finishedOn: string;
}

export interface SignedProvenance {
  uri: string;
  /** sha256 of the envelope's bytes as stored. */
  digest: string;
  keyId: string;
  subject: string;
}

/**
 * Writes the version's provenance: an in-toto Statement v1 with a SLSA Provenance v1 predicate, in a
 * DSSE envelope signed by the factory key, to the evidence bucket under Object Lock (compliance).
 * Deterministic (Ed25519 signatures are), so a retried attempt writes nothing new. Without a key, or
 * without the trainer's measurements, it fails for good, saying what is missing.
 */
export async function signProvenance(input: SignProvenanceInput): Promise<SignedProvenance> {
  const { env, s3 } = activityDeps();
  let key;
  try {
    key = loadFactoryKey(env);
  } catch (err) {
    if (err instanceof SigningKeyError) throw ApplicationFailure.nonRetryable(`cannot sign the provenance: ${err.message}`, 'SigningKeyMissing');
    throw err;
  }
  if (!input.measured) {
    throw ApplicationFailure.nonRetryable(
      'the training job recorded no measurement of its environment and code (a trainer older than signed provenance): train again',
      'ProvenanceUnavailable',
    );
  }
  const evaluator = sourceDigest(projectRoot, EVALUATOR_FILES);
  const statement = buildProvenanceStatement({
    artifact: { name: input.artifact.key, uri: input.artifact.uri, digest: input.artifact.digest },
    dataset: input.dataset,
    commitSha: input.commitSha,
    imageDigest: input.imageDigest,
    modelName: input.modelName,
    riskTier: input.riskTier,
    training: input.training,
    trainerCode: input.measured.trainerCode,
    trainingEnvironment: input.measured.environment,
    policy: input.policy,
    evaluator: { id: EVALUATOR_ID, codeDigest: evaluator.digest, files: evaluator.files, taskQueue: input.queues.gpu },
    builder: {
      id: `urn:ai-factory:builder:temporal:${env.TEMPORAL_NAMESPACE}:${input.queues.gpu}`,
      taskQueue: input.queues.gpu,
      namespace: env.TEMPORAL_NAMESPACE,
    },
    workflow: { id: input.workflowId, runId: input.runId },
    startedOn: input.startedOn,
    finishedOn: input.finishedOn,
  });
  const envelope = signProvenanceStatement(key, statement);
  const safe = (s: string) => s.replace(/[^\w.-]/g, '_');
  const objectKey = `provenance/${safe(input.workflowId)}/${safe(input.runId)}/model.onnx.intoto.json`;
  const put = await putOnce(s3, bucket(env, 'evidence'), objectKey, JSON.stringify(envelope), {
    contentType: 'application/json',
    retainUntil: retainUntilInForce('provenance'),
  });
  return { uri: put.uri, digest: put.digest, keyId: key.keyId, subject: input.artifact.digest };
}
