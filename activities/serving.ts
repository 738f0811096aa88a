import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { tritonPaths, tritonUrl } from '../src/serving/triton.ts';
import { EvidenceDiffers, EvidenceMissing, downloadVerified } from '../src/serving/artifact.ts';
import { startReconcileLoop } from '../src/serving/reconcile.ts';
import { TritonClient, modelConfig, repositoryScratchFile, writeRepositoryEntry } from '../src/serving/triton.ts';
import { withLoadSlot } from '../src/serving/load-slots.ts';
import { appendAuditEvent } from '../src/audit/append.ts';
import { verifyStoredProvenance } from '../src/provenance/verify.ts';
import { bucket } from '../src/storage/s3.ts';
import { customFacet, datasetRef } from '../src/lineage/openlineage.ts';
import { activityDeps } from './deps.ts';
import { withLineage } from './lineage.ts';

export interface DeployInput {
  modelVersionId: number;
  artifactKey: string;
  smokeInput: number[][];
  /** The provenance the lifecycle signed (URI, envelope sha256): verified before Triton loads. Absent from lifecycles older than signed provenance. */
  provenance?: { uri: string; digest: string };
}

export interface DeployResult {
  tritonModel: string;
  tritonVersion: number;
  endpoint: string;
  artifactDigest: string;
  smokeOutput: number[][];
  /** The provenance verified before loading (absent when the version has none: registered before signed provenance). */
  provenance?: { uri: string; digest: string; keyId: string };
}

type DeployPhase = 'check' | 'provenance' | 'download' | 'load' | 'readiness' | 'smoke';

/** Triton answers its index after the loads in progress: a wait of up to one load, not the default 10 s. */
const INDEX_TIMEOUT_MS = 120_000;

/**
 * Heartbeats `{phase, ...}` at most once a second, and every 2 s on its own while a long call (the
 * load, which starts a Python stub) is awaited: a worker that dies mid-deploy is noticed within the
 * heartbeat timeout instead of the whole start-to-close timeout, and a cancellation reaches us.
 */
function deployHeartbeat() {
  const ctx = Context.current();
  let last = 0;
  let details: Record<string, unknown> = {};
  const beat = (phase: DeployPhase, extra: Record<string, unknown> = {}, force = false) => {
    details = { phase, ...extra };
    if (!force && Date.now() - last < 1_000) return;
    last = Date.now();
    ctx.heartbeat(details);
  };
  const during = async <T>(phase: DeployPhase, fn: () => Promise<T>): Promise<T> => {
    beat(phase, {}, true);
    const timer = setInterval(() => beat(phase, details, true), 2_000);
    try {
      return await fn();
    } finally {
      clearInterval(timer);
    }
  };
  return { beat, during, signal: ctx.cancellationSignal };
}

/**
 * Deploys an approved version to Triton: the artifact is streamed from object storage and its digest
 * checked against the registry (not against what the caller says), the repository entry written,
 * the version loaded (beside the versions of this model Triton serves now, and no others) and
 * awaited, and a smoke inference sent. Heartbeats through each phase. A missing artifact is a
 * non-retryable `EvidenceMissing` naming the key; different bytes are `TamperedArtifact`.
 */
export async function deployToTriton(input: DeployInput): Promise<DeployResult> {
  const { env } = activityDeps();
  const artifact = datasetRef(`s3://${bucket(env, 'artifacts')}/${input.artifactKey}`);
  return withLineage(
    'factory.deploy',
    { inputs: [artifact] },
    () => serveVerified(input, { allowedStates: ['approved', 'deployed'] }),
    async (deployed) => ({
      inputs: [{ ...artifact, facets: { factory_artifact: customFacet('ArtifactDatasetFacet', { artifactDigest: deployed.artifactDigest }) } }],
      outputs: [{ namespace: `triton:${deployed.endpoint.replace(/\/v2\/.*$/, '')}`, name: `${deployed.tritonModel}/${deployed.tritonVersion}` }],
      runFacets: {
        factory_approvals: customFacet('ApprovalsRunFacet', { modelVersionId: input.modelVersionId, approvals: await approvalsOf(input.modelVersionId) }),
      },
    }),
  );
}

/** The accepted decisions behind a deployment: who approved, in which role, signed or not. */
async function approvalsOf(modelVersionId: number) {
  const rows = await activityDeps()
    .db.selectFrom('approvals')
    .select(['approver', 'role', 'meaning', 'decision', 'decided_at', 'key_fingerprint'])
    .where('model_version_id', '=', modelVersionId)
    .where('accepted', '=', true)
    .orderBy('decided_at')
    .execute();
  return rows.map((r) => ({
    approver: r.approver,
    role: r.role,
    meaning: r.meaning,
    decision: r.decision,
    decidedAt: new Date(r.decided_at).toISOString(),
    keyFingerprint: r.key_fingerprint,
  }));
}

export interface ServeOptions {
  /** Registry states a version may be in to be loaded (a deployment: approved or deployed; a rollback: deployed or rolled-back). */
  allowedStates: readonly string[];
  /** Triton's name for it: the model's own name (default), or a drill's shadow model (`<model>--shadow`). */
  tritonModel?: string;
}

/**
 * The one path that puts a version in front of Triton: signed provenance, artifact digest against the
 * registry, repository entry, load beside the versions served now, readiness and smoke. The
 * deployment, a rollback and a drill's shadow deployment all go through it (nothing is copied).
 */
export async function serveVerified(input: DeployInput, opts: ServeOptions): Promise<DeployResult> {
  const { env, s3, db } = activityDeps();
  const hb = deployHeartbeat();
  hb.beat('check', {}, true);
  const mv = await db
    .selectFrom('model_versions')
    .select([
      'model_name',
      'version',
      'state',
      'artifact_digest',
      'workflow_id',
      'dataset_manifest_digest',
      'commit_sha',
      'policy_digest',
      'image_digest',
      'provenance_uri',
      'provenance_digest',
    ])
    .where('id', '=', input.modelVersionId)
    .executeTakeFirstOrThrow();
  if (!opts.allowedStates.includes(mv.state)) {
    throw ApplicationFailure.nonRetryable(`model version ${mv.model_name}@${mv.version} is ${mv.state}, not ${opts.allowedStates.join(' or ')}`, 'NotApproved');
  }
  const tritonModel = opts.tritonModel ?? mv.model_name;
  // Provenance first: nothing is downloaded into the repository, let alone loaded, for a version whose
  // signed provenance does not verify or disagrees with the registry.
  let provenance: DeployResult['provenance'];
  if (input.provenance || mv.provenance_uri) {
    hb.beat('provenance', {}, true);
    const verdict = await verifyStoredProvenance({ env, s3 }, mv, input.provenance);
    if (!verdict.ok) await refuseProvenance(mv, input, verdict.reason);
    else provenance = { uri: verdict.uri, digest: verdict.digest, keyId: verdict.keyId };
  }
  const repository = tritonPaths(env).modelRepository;
  const scratch = repositoryScratchFile(repository, tritonModel);
  const Bucket = bucket(env, 'artifacts');
  const width = input.smokeInput[0]?.length ?? 0;
  try {
    await hb.during('download', () =>
      downloadVerified(s3, { bucket: Bucket, key: input.artifactKey }, mv.artifact_digest, scratch, {
        signal: hb.signal,
        onProgress: (bytes) => hb.beat('download', { bytes }),
      }),
    );
    writeRepositoryEntry({ repository, model: tritonModel, version: mv.version, onnx: { file: scratch }, inputWidth: width, outputWidth: 1 });
  } catch (err) {
    if (err instanceof EvidenceMissing) {
      throw ApplicationFailure.create({
        nonRetryable: true,
        type: 'EvidenceMissing',
        message: `artifact ${err.uri} (key ${input.artifactKey}) does not exist: refusing to deploy ${mv.model_name}@${mv.version}`,
        details: [{ uri: err.uri, key: input.artifactKey }],
      });
    }
    if (err instanceof EvidenceDiffers) {
      throw ApplicationFailure.nonRetryable(
        `artifact ${input.artifactKey} is ${err.actual}, the registry holds ${err.expected}: refusing to deploy`,
        'TamperedArtifact',
      );
    }
    throw err;
  } finally {
    // Moved into the repository on success; whatever is left is a failed download.
    if (fs.existsSync(scratch)) fs.rmSync(scratch, { force: true });
  }
  const triton = new TritonClient(tritonUrl(env));
  await hb.during('load', () =>
    withLoadSlot(tritonModel, env.FACTORY_TRITON_MAX_CONCURRENT_LOADS, hb.signal, async () => {
      const serving = (await triton.index({ ready: true, signal: hb.signal, timeoutMs: INDEX_TIMEOUT_MS }))
        .filter((e) => e.name === tritonModel && e.state === 'READY')
        .map((e) => Number(e.version));
      const config = modelConfig({ model: tritonModel, inputWidth: width, outputWidth: 1, versions: [...serving, mv.version] });
      await triton.load(tritonModel, { config, signal: hb.signal });
      await awaitVersionReady(triton, tritonModel, mv.version, hb);
    }),
  );
  const { outputs } = await hb.during('smoke', () => triton.infer(tritonModel, input.smokeInput, mv.version, { signal: hb.signal }));
  if (!outputs.every((row) => row.every((v) => Number.isFinite(v) && v >= 0 && v <= 1))) {
    throw ApplicationFailure.nonRetryable(`smoke inference returned ${JSON.stringify(outputs).slice(0, 200)}, not probabilities`, 'SmokeFailed');
  }
  return {
    tritonModel,
    tritonVersion: mv.version,
    endpoint: `${tritonUrl(env)}/v2/models/${tritonModel}/versions/${mv.version}/infer`,
    artifactDigest: mv.artifact_digest,
    smokeOutput: outputs,
    ...(provenance ? { provenance } : {}),
  };
}

/** How long a loaded version may take to answer ready (Triton's load call returns once it is loaded, so this is rarely waited). */
const READY_WAIT_MS = 60_000;

/**
 * Polls the version's readiness at once, then every 25, 50, 100… ms up to 500: Triton's load returns
 * when the version is loaded, so the first poll nearly always answers, and a version that lags is
 * seen within a few tens of ms instead of a fixed half second.
 */
async function awaitVersionReady(triton: TritonClient, model: string, version: number, hb: ReturnType<typeof deployHeartbeat>): Promise<void> {
  const until = Date.now() + READY_WAIT_MS;
  for (let i = 0, delay = 25; !(await triton.versionReady(model, version, { signal: hb.signal })); i++, delay = Math.min(delay * 2, 500)) {
    if (Date.now() > until) throw ApplicationFailure.retryable(`${model} version ${version} not ready after loading`, 'NotReady');
    hb.beat('readiness', { polls: i });
    await sleep(delay, undefined, { signal: hb.signal });
  }
}

/**
 * Records a provenance refusal (audit event `provenance.refused`, once per run) and fails the
 * deployment for good as `ProvenanceMismatch`: the lifecycle ends failed, its version `failed`.
 */
async function refuseProvenance(
  mv: { model_name: string; version: number; workflow_id: string; provenance_uri: string | null; provenance_digest: string | null },
  input: DeployInput,
  reason: string,
): Promise<never> {
  const { db } = activityDeps();
  const info = Context.current().info;
  await appendAuditEvent(db, {
    workflowId: info.workflowExecution?.workflowId ?? mv.workflow_id,
    runId: info.workflowExecution?.runId ?? 'unknown',
    step: 'provenance.refused',
    kind: 'provenance.refused',
    actor: 'factory-serving',
    payload: {
      at: 'deploy',
      modelName: mv.model_name,
      version: mv.version,
      modelVersionId: input.modelVersionId,
      provenanceUri: mv.provenance_uri,
      provenanceDigest: mv.provenance_digest,
      expected: input.provenance ?? null,
      reason,
    },
    occurredAt: new Date().toISOString(),
  });
  throw ApplicationFailure.nonRetryable(`provenance of ${mv.model_name}@${mv.version} refused, nothing loaded: ${reason}`, 'ProvenanceMismatch');
}

/**
 * The serving worker's reconcile loop (src/serving/reconcile.ts): every 10 s, deployed versions that
 * Triton does not serve (it restarted) are reloaded from verified artifacts. Started by
 * workers/run.ts when the process polls the serving queue; the returned stop ends it.
 */
export function startServingReconciler(): { stop(): Promise<void> } {
  const { env, db, s3, log } = activityDeps();
  return startReconcileLoop({ env, db, s3, log });
}

/** How much of the certified file smokeRows reads at most: its header and first rows, never the whole file. */
export const SMOKE_READ_BYTES = 1024 * 1024;

/**
 * The first rows of the certified dataset as feature vectors, for the smoke inference. Only the head
 * of the file is fetched (a byte Range request, and the stream is dropped as soon as enough lines
 * have arrived), whatever the file's size; rows longer than SMOKE_READ_BYTES are refused.
 */
export async function smokeRows(input: { certifiedKey: string; rows: number }): Promise<number[][]> {
  const { env, s3 } = activityDeps();
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket(env, 'certified'), Key: input.certifiedKey, Range: `bytes=0-${SMOKE_READ_BYTES - 1}` }));
  const body = res.Body as Readable;
  const wanted = input.rows + 1; // the header, then the rows
  let text = '';
  let ended = true;
  try {
    for await (const chunk of body) {
      text += (chunk as Buffer).toString('utf8');
      // A store that ignores Range still gives no more than SMOKE_READ_BYTES to this activity.
      if (text.split('\n').length > wanted || text.length >= SMOKE_READ_BYTES) {
        ended = false;
        break;
      }
    }
  } finally {
    body.destroy();
  }
  let lines = text.split('\n');
  if (!ended) lines = lines.slice(0, -1); // the last piece may be a line cut short
  lines = lines.filter((l) => l.trim() !== '').slice(0, wanted);
  if (lines.length < Math.min(wanted, 2)) {
    throw ApplicationFailure.nonRetryable(`the first ${SMOKE_READ_BYTES} bytes of ${input.certifiedKey} hold no complete data row`, 'SmokeRowsUnavailable');
  }
  return lines.slice(1).map((line) => line.split(',').slice(0, -1).map(Number));
}

/**
 * Takes one version of a model out of Triton (a retirement): the model is reloaded serving its other
 * READY versions, or unloaded when none is left. Refuses (`StillDeployed`) a version the registry
 * still says is deployed, so the reconciler would not load it again. Idempotent: a version Triton
 * does not serve is reported `unloaded: false`.
 */
export async function unloadVersion(input: { modelVersionId: number }): Promise<{ unloaded: boolean; remaining: number[] }> {
  const { env, db } = activityDeps();
  const mv = await db.selectFrom('model_versions').select(['model_name', 'version', 'state']).where('id', '=', input.modelVersionId).executeTakeFirstOrThrow();
  if (mv.state === 'deployed') {
    throw ApplicationFailure.nonRetryable(`${mv.model_name}@${mv.version} is still deployed in the registry: not unloaded`, 'StillDeployed');
  }
  const triton = new TritonClient(tritonUrl(env));
  const ready = (await triton.index({ ready: true })).filter((e) => e.name === mv.model_name && e.state === 'READY').map((e) => Number(e.version));
  if (!ready.includes(mv.version)) return { unloaded: false, remaining: ready };
  const remaining = ready.filter((v) => v !== mv.version);
  if (remaining.length === 0) {
    await triton.unload(mv.model_name);
  } else {
    // The width the model was deployed with (its smoke inference's rows), as the reconciler reads it.
    const d = await db
      .selectFrom('deployments')
      .select('smoke')
      .where('model_version_id', '=', input.modelVersionId)
      .orderBy('deployed_at', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    const rows = (d.smoke as { input?: number[][]; output?: number[][] }) ?? {};
    const width = (r?: number[][]) => r?.[0]?.length ?? 0;
    await triton.load(mv.model_name, {
      config: modelConfig({ model: mv.model_name, inputWidth: width(rows.input), outputWidth: width(rows.output) || 1, versions: remaining }),
    });
  }
  for (let i = 0; await triton.versionReady(mv.model_name, mv.version); i++) {
    if (i > 60) throw ApplicationFailure.retryable(`${mv.model_name} version ${mv.version} still ready after unloading`, 'StillServed');
    await sleep(500);
  }
  return { unloaded: true, remaining };
}
