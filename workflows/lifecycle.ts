import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { controlActivities, gpuActivities, servingActivities } from '../activities/index.ts';
import { LifecycleStageKey, ModelNameKey, PendingRolesKey, RiskTierKey } from '../temporal/search-attributes.ts';
import { type ApprovalStatus, escapeUnsafe } from '../src/domain/approval.ts';
import { type LifecycleCheckpoint, type LifecycleInput, type LifecycleOutcome, type LifecycleStage, lifecycleInputSchema } from '../src/domain/lifecycle.ts';
import { CANCEL_REQUEST_SIGNAL, cancelRequestSchema } from '../src/domain/cancel.ts';
import { queuePrefix, queuesFor } from '../src/domain/task-queues.ts';
import { dataClassificationSchema } from '../src/domain/classification.ts';
import { chooseZone, placeJob, waitingReason } from '../src/placement/place.ts';
import { DEFAULT_ZONES, durationMs } from '../src/policy/schema.ts';
import { ApprovalGate, type LoadedPolicy } from './approval-gate.ts';
import { startArchiverOnClose } from './history-archiver.ts';
import { ensureMonitor } from './monitor.ts';

export { approveSignal, decideUpdate, rejectSignal, withdrawSignal, type DecisionVerdict } from './approval-gate.ts';
export const approvalStatusQuery = defineQuery<ApprovalStatus>('approvalStatus');
/** Who asks to cancel, and why: sent before the cancellation, recorded with the lifecycle's end. */
export const cancelRequestSignal = defineSignal<[unknown]>(CANCEL_REQUEST_SIGNAL);

/** Lifecycles that fail or are cancelled after this change leave a terminal record (registry state + audit event). */
export const TERMINAL_RECORDS_PATCH = 'terminal-records';
/**
 * Lifecycles that pass this point after this change sign their version's provenance (in-toto / SLSA
 * in a DSSE envelope) before registering it, and their deployment verifies it before Triton loads.
 */
export const SIGNED_PROVENANCE_PATCH = 'signed-provenance';

/**
 * Lifecycles that reach training after this change are placed by policy: the zones allowed for the
 * dataset's classification (the pack's `zones`), the decision recorded, training and evaluation
 * scheduled on an allowed zone with a live worker, waiting (and saying why) while none has one.
 */
export const PLACEMENT_PATCH = 'placement';
/**
 * Lifecycles that place training after this change record `data.transferred` (with the lifecycle's
 * approved purpose) when the chosen zone is away from the data's home (an on-prem location).
 */
export const TRANSFER_RECORDS_PATCH = 'transfer-records';
/** Checks of zone availability while training waits for an allowed zone: first after 2 s, then less often, at most every 30 s. */
const PLACEMENT_FIRST_RECHECK_MS = 2_000;
const PLACEMENT_MAX_RECHECK_MS = 30_000;

/** Lifecycles that end after this change anchor the audit chain: a signed checkpoint of its head, outside the database. */
export const AUDIT_CHECKPOINT_PATCH = 'audit-checkpoint';

/**
 * The end of every lifecycle (deployed, rejected, failed, cancelled) writes a signed checkpoint of
 * the audit chain. A checkpoint that cannot be written does not change the lifecycle's outcome: the
 * schedule writes the next one within minutes, and `audit verify` reports what is anchored.
 */
async function checkpointAtEnd(reason: string): Promise<void> {
  if (!patched(AUDIT_CHECKPOINT_PATCH)) return;
  const control = proxyActivities<typeof controlActivities>({
    taskQueue: queuesFor(workflowInfo().taskQueue).control,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 10 },
  });
  try {
    await CancellationScope.nonCancellable(() => control.writeAuditCheckpoint({ reason }));
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
  }
}

/**
 * Lifecycles that certify after this change hand their declared purpose and override (if any) to the
 * certifier: consent is judged per row, and a signed override may re-include consent exclusions.
 */
export const DATASET_PURPOSE_PATCH = 'dataset-purpose';

/** Lifecycles that close after this change start the archiver that exports their full history as evidence. */
export const HISTORY_EXPORT_PATCH = 'history-export';

/**
 * Starts the history archiver for this run as the lifecycle closes (deployed, rejected, failed,
 * cancelled): it outlives the lifecycle (ABANDON) and waits for the close before it reads the history.
 * Never fails the lifecycle: an archiver that cannot start (one already running under the derived id)
 * is logged, and `factory history export` does the same work.
 */
async function archiveOnClose(): Promise<void> {
  if (!patched(HISTORY_EXPORT_PATCH)) return;
  await startArchiverOnClose('lifecycle');
}

/**
 * Lifecycles that deploy after this change start the model's deployment monitor (workflows/monitor.ts)
 * when their tier has `monitoring` in the pack: one per model, so a monitor already running carries on
 * and follows the route to the new version.
 */
export const DEPLOYMENT_MONITOR_PATCH = 'deployment-monitor';

/** What the lifecycle's end needs to know, filled in as the lifecycle goes. */
interface LifecycleEnd {
  modelVersionId?: number;
  status?: ApprovalStatus;
  cancelRequest?: { by: string; reason: string };
}

/**
 * The governed model lifecycle: ingest → train → evaluate → register → approve → deploy. Whatever
 * ends it other than its outcome (a failure, a cancellation) is recorded: the version moves to
 * `failed` or `cancelled` and a terminal audit event names the cause, even while being cancelled.
 */
export async function modelLifecycle(rawInput: LifecycleInput, checkpoint?: LifecycleCheckpoint): Promise<LifecycleOutcome> {
  const end: LifecycleEnd = {};
  setHandler(cancelRequestSignal, (raw) => {
    const parsed = cancelRequestSchema.safeParse(raw);
    // A malformed request is kept as an escaped excerpt: the cancellation itself is what counts.
    end.cancelRequest = parsed.success
      ? parsed.data
      : { by: 'unknown', reason: `unreadable cancel request: ${escapeUnsafe(JSON.stringify(raw) ?? '').slice(0, 200)}` };
  });
  try {
    const outcome = await governedLifecycle(rawInput, checkpoint, end);
    await checkpointAtEnd(`lifecycle ${outcome.outcome}: ${workflowInfo().workflowId}`);
    return outcome;
  } catch (err) {
    if (err instanceof ContinueAsNew || !patched(TERMINAL_RECORDS_PATCH)) throw err;
    const outcome = isCancellation(err) ? 'cancelled' : 'failed';
    const { workflowId, runId, taskQueue } = workflowInfo();
    const control = proxyActivities<typeof controlActivities>({
      taskQueue: queuesFor(taskQueue).control,
      startToCloseTimeout: '2 minutes',
      retry: { initialInterval: '1 second', maximumInterval: '15 seconds' },
    });
    if (end.status) {
      end.status.outcome = `${outcome}: ${causeOf(err)}`;
      end.status.stage = outcome;
      end.status.waiting = false;
    }
    upsertSearchAttributes([
      { key: LifecycleStageKey, value: outcome },
      { key: PendingRolesKey, value: [] },
    ]);
    // Recorded even while the workflow is being cancelled: the trail must say how the lifecycle ended.
    await CancellationScope.nonCancellable(() =>
      control.recordLifecycleEnd({
        workflowId,
        runId,
        modelVersionId: end.modelVersionId,
        outcome,
        cause: outcome === 'cancelled' && end.cancelRequest ? `cancelled: ${end.cancelRequest.reason}` : causeOf(err),
        ...(outcome === 'cancelled' && end.cancelRequest ? { actor: end.cancelRequest.by } : {}),
        at: new Date().toISOString(),
      }),
    );
    await checkpointAtEnd(`lifecycle ${outcome}: ${workflowId}`);
    await archiveOnClose();
    throw err;
  }
}

/** The innermost failure's type and message: what a reviewer needs, not "Activity task failed". */
function causeOf(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  const type = e instanceof ApplicationFailure && e.type ? `${e.type}: ` : '';
  return escapeUnsafe(`${type}${e instanceof Error ? e.message : String(e)}`).slice(0, 2_000);
}

async function governedLifecycle(rawInput: LifecycleInput, checkpoint: LifecycleCheckpoint | undefined, end: LifecycleEnd): Promise<LifecycleOutcome> {
  const parsed = lifecycleInputSchema.safeParse(rawInput);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid lifecycle input: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      'InvalidInput',
    );
  }
  const input = parsed.data;
  const { workflowId, runId, taskQueue } = workflowInfo();
  const zones = queuesFor(taskQueue);

  // Registry and audit writes retry without limit: a database outage is waited out, not failed.
  const control = proxyActivities<typeof controlActivities>({
    taskQueue: zones.control,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds' },
  });
  // Ingest and certification stream the whole dataset (up to FACTORY_DATASET_MAX_BYTES, 1 GiB by
  // default) and heartbeat per chunk, row batch and 16 MiB upload part: 2 minutes would cut a large
  // file off and retry it without end. They get hours, and a heartbeat timeout that outlasts one part
  // on a slow store, so a lost worker is noticed in minutes. Same queue, same retries as control.
  const data = proxyActivities<Pick<typeof controlActivities, 'quarantineRaw' | 'certifyDataset'>>({
    taskQueue: zones.control,
    startToCloseTimeout: '3 hours',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds' },
  });
  // Training and evaluation heartbeat every second. A graceful worker restart fails the running
  // attempt on purpose (the job keeps running; the retry re-attaches), so each restart uses an attempt:
  // 20 allow many restarts in one training, while the launcher fails a job that keeps failing for good
  // after 3 runs (MAX_FAILED_JOB_RUNS).
  const gpuOn = (queue: string) =>
    proxyActivities<typeof gpuActivities>({
      taskQueue: queue,
      startToCloseTimeout: '6 hours',
      heartbeatTimeout: '10 seconds',
      retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 20 },
    });
  const serving = proxyActivities<typeof servingActivities>({
    taskQueue: zones.serving,
    startToCloseTimeout: '10 minutes',
    // deployToTriton heartbeats through download, load, readiness and smoke: a worker lost mid-deploy
    // is noticed in 30 s, not 10 minutes. (Activity options are not part of replay's command check.)
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 10 },
  });

  const now = () => new Date().toISOString();
  const appendAudit = (step: string, kind: string, payload: Record<string, unknown>, actor = 'factory') =>
    control.appendAudit({ workflowId, runId, step, kind, actor, payload, occurredAt: now() });
  /** A lifecycle milestone: recorded once per run, its step is its kind. */
  const audit = (event: string, payload: Record<string, unknown>, actor?: string) => appendAudit(event, event, payload, actor);

  // ---- state visible to queries, the UI and search -------------------------------------------
  const status: ApprovalStatus = {
    stage: 'ingest',
    waiting: false,
    modelName: input.modelName,
    riskTier: input.riskTier,
    requiredRoles: [],
    pendingRoles: [],
    approvals: [],
    refusals: [],
  };
  const enterStage = (next: LifecycleStage, details: string) => {
    status.stage = next;
    upsertSearchAttributes([{ key: LifecycleStageKey, value: next }]);
    setCurrentDetails(details);
  };
  setHandler(approvalStatusQuery, () => status);
  end.status = status;
  upsertSearchAttributes([
    { key: ModelNameKey, value: input.modelName },
    { key: RiskTierKey, value: input.riskTier },
  ]);

  const gate = new ApprovalGate(
    {
      workflowId,
      runId,
      status,
      now,
      records: control,
      audit: appendAudit,
    },
    checkpoint?.gate,
  );

  // A run continued from this lifecycle's previous run resumes at the gate with the state it handed on.
  // Only continue-as-new can set continuedFromExecutionRunId: a client cannot forge a checkpoint.
  if (checkpoint) {
    if (!workflowInfo().continuedFromExecutionRunId) {
      throw ApplicationFailure.nonRetryable('a lifecycle checkpoint is accepted only from its own previous run (continue-as-new)', 'InvalidInput');
    }
    return awaitApproval(checkpoint);
  }

  // ---- ingest ---------------------------------------------------------------------------------
  enterStage('ingest', `Ingesting ${input.datasetPath} into quarantine`);
  const policy = await control.loadPolicy();
  const tier = policy.pack.riskTiers[input.riskTier];
  const schemaPath = input.schemaPath ?? input.datasetPath.replace(/[^/]+$/, 'schema.json');
  await audit('lifecycle.started', { input, policy: { digest: policy.digest, source: policy.source, version: policy.pack.version } }, input.requester);

  const quarantined = await data.quarantineRaw({ datasetPath: input.datasetPath, schemaPath });
  await audit('dataset.quarantined', { ...quarantined });
  const governed = patched(DATASET_PURPOSE_PATCH)
    ? { ...(input.purpose ? { purpose: input.purpose } : {}), ...(input.overridePath ? { overridePath: input.overridePath } : {}) }
    : {};
  const dataset = await data.certifyDataset({ workflowId, quarantined, schemaPath, maxExcludedFraction: tier.maxExcludedFraction, ...governed });
  await audit('dataset.certified', { ...dataset });

  // ---- place ----------------------------------------------------------------------------------
  let gpuQueue = zones.gpuOnprem;
  if (patched(PLACEMENT_PATCH)) gpuQueue = await placeTraining(dataset.classification);
  const gpu = gpuOn(gpuQueue);

  // ---- train ----------------------------------------------------------------------------------
  enterStage('train', `Training on ${gpuQueue} (${input.training.epochs} epochs)`);
  const trainingStartedOn = now();
  const trained = await gpu.trainModel({
    workflowId,
    modelName: input.modelName,
    certifiedKey: dataset.certifiedKey,
    schemaPath,
    epochs: input.training.epochs,
    seed: input.training.seed,
    imageDigest: input.imageDigest,
  });
  const trainingFinishedOn = now();
  await audit('training.completed', {
    artifactDigest: trained.artifactDigest,
    artifactUri: trained.artifactUri,
    trainerMetrics: trained.trainerMetrics,
    environment: trained.environment,
    attach: trained.attach,
  });

  // ---- evaluate -------------------------------------------------------------------------------
  enterStage('evaluate', 'Evaluating the artifact on the held-out split');
  const metrics = await gpu.evaluateModel({
    workflowId,
    artifactKey: trained.artifactKey,
    artifactDigest: trained.artifactDigest,
    certifiedKey: dataset.certifiedKey,
    schemaPath,
    seed: input.training.seed,
  });
  const failing: Record<string, { value: number; threshold: number }> = {};
  for (const [metric, threshold] of Object.entries(tier.thresholds)) {
    const value = metrics[metric] ?? Number.NaN;
    if (!(value >= threshold)) failing[metric] = { value, threshold };
  }
  await audit('evaluation.completed', { metrics, thresholds: tier.thresholds, failing, policyDigest: policy.digest });

  // ---- provenance -----------------------------------------------------------------------------
  let provenance: { uri: string; digest: string; keyId: string } | undefined;
  if (patched(SIGNED_PROVENANCE_PATCH)) {
    const signed = await control.signProvenance({
      workflowId,
      runId,
      modelName: input.modelName,
      riskTier: input.riskTier,
      artifact: { key: trained.artifactKey, uri: trained.artifactUri, digest: trained.artifactDigest },
      dataset: {
        name: dataset.datasetName,
        rawUri: quarantined.rawUri,
        rawSha256: quarantined.rawSha256,
        manifestUri: dataset.manifestUri,
        manifestDigest: dataset.manifestDigest,
        certifiedUri: dataset.certifiedUri,
        certifiedSha256: dataset.certifiedSha256,
      },
      commitSha: input.commitSha,
      imageDigest: input.imageDigest,
      training: input.training,
      measured: trained.measured,
      policy: { digest: policy.digest, source: policy.source, version: policy.pack.version },
      queues: { gpu: gpuQueue },
      startedOn: trainingStartedOn,
      finishedOn: trainingFinishedOn,
    });
    provenance = { uri: signed.uri, digest: signed.digest, keyId: signed.keyId };
    await audit('provenance.signed', { ...signed });
  }

  // ---- register -------------------------------------------------------------------------------
  enterStage('register', 'Registering the model version');
  const mv = await control.registerModel({
    workflowId,
    runId,
    modelName: input.modelName,
    riskTier: input.riskTier,
    artifactDigest: trained.artifactDigest,
    artifactUri: trained.artifactUri,
    datasetManifestDigest: dataset.manifestDigest,
    commitSha: input.commitSha,
    imageDigest: input.imageDigest,
    requester: input.requester,
    developer: input.developer,
    metrics,
    environment: trained.environment,
    policyDigest: policy.digest,
    ...(provenance ? { provenance } : {}),
  });
  status.version = mv.version;
  status.modelDigest = trained.artifactDigest;
  end.modelVersionId = mv.id;
  await audit('model.registered', { modelVersionId: mv.id, version: mv.version, artifactDigest: trained.artifactDigest });

  const reject = rejecter(mv, policy, failing);

  if (Object.keys(failing).length) {
    return reject(
      `evaluation below the ${input.riskTier}-risk thresholds: ${Object.entries(failing)
        .map(([m, f]) => `${m} ${f.value.toFixed(4)} < ${f.threshold}`)
        .join(', ')}`,
      { failing },
    );
  }
  await control.setModelState({ id: mv.id, to: 'validated' });
  await audit('model.validated', { version: mv.version, metrics });

  // ---- approval gate --------------------------------------------------------------------------
  return awaitApproval({
    candidate: {
      policy: { pack: policy.pack, digest: policy.digest },
      modelVersion: mv,
      artifact: { key: trained.artifactKey, digest: trained.artifactDigest },
      certifiedKey: dataset.certifiedKey,
      deadlineMs: Date.now() + durationMs(tier.approvalTimeout),
      ...(provenance ? { provenance: { uri: provenance.uri, digest: provenance.digest } } : {}),
    },
  });

  /**
   * Asks the pure placement function which zones may train on data of `classification`, records the
   * decision, and returns the queue of an allowed zone once one has a live worker. A zone it may not use
   * is never chosen, however free: the lifecycle waits, and its status and current details say why.
   */
  async function placeTraining(classification: string): Promise<string> {
    const parsedClass = dataClassificationSchema.safeParse(classification);
    if (!parsedClass.success) throw ApplicationFailure.nonRetryable(`unknown data classification ${JSON.stringify(classification)}`, 'InvalidClassification');
    const job = { classification: parsedClass.data };
    enterStage('train', `Placing training on a zone allowed for ${parsedClass.data} data`);
    const packZones = policy.pack.zones ?? DEFAULT_ZONES;
    const decision = placeJob(job, packZones);
    const allowedZones = decision.allowed.map((z) => z.zone);
    await audit('placement.decided', { classification, allowed: decision.allowed, refused: decision.refused, policyDigest: policy.digest });
    if (!allowedZones.length) {
      const reason = waitingReason(job, decision, {});
      status.placement = { classification, allowedZones, waiting: false, reason };
      throw ApplicationFailure.nonRetryable(reason, 'NoZoneAllowed');
    }
    const prefix = queuePrefix(taskQueue);
    let recheckMs = PLACEMENT_FIRST_RECHECK_MS;
    let waitRecorded = false;
    for (;;) {
      const live = await control.zoneWorkers({ prefix, zones: packZones.map((z) => z.name) });
      const chosen = chooseZone(decision, live);
      if (chosen) {
        status.placement = { classification, allowedZones, zone: chosen.zone, waiting: false, reason: chosen.reason };
        await audit('placement.scheduled', {
          zone: chosen.zone,
          location: chosen.location,
          queue: `${prefix}${chosen.zone}`,
          reason: chosen.reason,
          liveWorkers: live,
        });
        // The certified data leaves its home (the on-prem control zone) for the chosen zone: recorded with why.
        if (chosen.location !== 'on-prem' && patched(TRANSFER_RECORDS_PATCH)) {
          await audit('data.transferred', {
            classification,
            fromLocation: 'on-prem',
            toZone: chosen.zone,
            toLocation: chosen.location,
            purpose: input.purpose ?? null,
            policyDigest: policy.digest,
          });
        }
        return `${prefix}${chosen.zone}`;
      }
      const reason = waitingReason(job, decision, live);
      status.placement = { classification, allowedZones, waiting: true, reason };
      setCurrentDetails(`Training waits: ${reason}`);
      if (!waitRecorded) {
        await audit('placement.waiting', { reason, liveWorkers: live });
        waitRecorded = true;
      }
      await sleep(recheckMs);
      recheckMs = Math.min(recheckMs * 2, PLACEMENT_MAX_RECHECK_MS);
    }
  }

  /** The gate and what follows it; a continued run starts here with the checkpoint its previous run handed on. */
  async function awaitApproval(from: LifecycleCheckpoint): Promise<LifecycleOutcome> {
    const { policy, modelVersion: mv, artifact, deadlineMs } = from.candidate;
    const tier = policy.pack.riskTiers[input.riskTier];
    status.version = mv.version;
    status.modelDigest = artifact.digest;
    end.modelVersionId = mv.id;
    status.continuedRuns = from.gate ? (from.continuedRuns ?? 0) : undefined;
    const reject = rejecter(mv, policy);

    enterStage('approval', 'Waiting for approval');
    const gateResult = await gate.await(
      {
        modelDigest: artifact.digest,
        requester: input.requester,
        developer: input.developer,
        requiredRoles: tier.approverRoles,
        requireSignature: tier.requireSignature ?? false,
      },
      mv.id,
      policy,
      deadlineMs,
      { onRejection: tier.onRejection, resumed: !!from.gate },
    );
    if ('continueAsNew' in gateResult) {
      // The history stays bounded however many decisions arrive: the gate goes on in a fresh run.
      return continueAsNew<typeof modelLifecycle>(rawInput, { ...from, gate: gateResult.continueAsNew, continuedRuns: (from.continuedRuns ?? 0) + 1 });
    }
    if ('rejectedBy' in gateResult) {
      const r = gateResult.rejectedBy;
      return reject(`rejected by ${r.principalName} <${r.approver}> as ${r.role}${r.comment ? `: ${r.comment}` : ''}`);
    }
    if ('timedOut' in gateResult) return reject(`approval timed out after ${tier.approvalTimeout}; still pending: ${status.pendingRoles.join(', ')}`);
    await control.setModelState({ id: mv.id, to: 'approved' });
    await audit('model.approved', { version: mv.version, approvals: status.approvals.map((a) => ({ approver: a.approver, role: a.role, at: a.at })) });
    return deploy(from, reject);
  }

  async function deploy(from: LifecycleCheckpoint, reject: ReturnType<typeof rejecter>): Promise<LifecycleOutcome> {
    const { policy, modelVersion: mv, artifact, certifiedKey } = from.candidate;
    // ---- deploy ---------------------------------------------------------------------------------
    enterStage('deploy', `Deploying ${input.modelName} v${mv.version} to Triton`);
    upsertSearchAttributes([{ key: PendingRolesKey, value: [] }]);
    const smokeInput = await control.smokeRows({ certifiedKey, rows: 2 });
    let deployed;
    try {
      // A candidate signed under SIGNED_PROVENANCE_PATCH carries its provenance: the deployment verifies
      // it before Triton loads (same command as before; only its input grows).
      deployed = await serving.deployToTriton({
        modelVersionId: mv.id,
        artifactKey: artifact.key,
        smokeInput,
        ...(from.candidate.provenance ? { provenance: from.candidate.provenance } : {}),
      });
    } catch (err) {
      // An artifact that no longer matches the registry is never served: the version is rejected.
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'TamperedArtifact') {
        return reject(`artifact refused at deployment: ${err.cause.message}`);
      }
      throw err;
    }
    const deployedAt = now();
    await control.recordDeployment({
      id: `${workflowId}/${runId}/deployment`,
      modelVersionId: mv.id,
      tritonModel: deployed.tritonModel,
      tritonVersion: deployed.tritonVersion,
      endpoint: deployed.endpoint,
      artifactDigest: deployed.artifactDigest,
      smoke: { input: smokeInput, output: deployed.smokeOutput },
      deployedAt,
    });
    await control.setModelState({ id: mv.id, to: 'deployed' });
    await audit('model.deployed', { ...deployed, deployedAt });
    status.outcome = 'deployed';
    enterStage('deployed', `Serving ${deployed.tritonModel} v${deployed.tritonVersion} at ${deployed.endpoint}`);
    if (patched(DEPLOYMENT_MONITOR_PATCH)) {
      const monitoring = policy.pack.riskTiers[input.riskTier].monitoring;
      if (monitoring) await ensureMonitor({ modelName: input.modelName, windowMs: durationMs(monitoring.window), startedBy: input.requester });
    }
    await archiveOnClose();
    await gate.refuseLeftovers(mv.id, policy);
    await condition(allHandlersFinished);
    return {
      outcome: 'deployed',
      modelName: input.modelName,
      version: mv.version,
      artifactDigest: deployed.artifactDigest,
      tritonModel: deployed.tritonModel,
      endpoint: deployed.endpoint,
    };
  }

  /** Ends the lifecycle as rejected: the registry, the trail, then decisions still waiting are answered. */
  function rejecter(mv: { id: number; version: number }, policy: LoadedPolicy, failing: Record<string, { value: number; threshold: number }> = {}) {
    return async (reason: string, extra: Record<string, unknown> = {}): Promise<LifecycleOutcome> => {
      await control.setModelState({ id: mv.id, to: 'rejected' });
      await audit('model.rejected', { reason, ...extra, version: mv.version });
      status.outcome = `rejected: ${reason}`;
      enterStage('rejected', `Rejected: ${reason}`);
      upsertSearchAttributes([{ key: PendingRolesKey, value: [] }]);
      await archiveOnClose();
      await gate.refuseLeftovers(mv.id, policy);
      await condition(allHandlersFinished);
      return { outcome: 'rejected', modelName: input.modelName, version: mv.version, reason, ...(Object.keys(failing).length ? { failing } : {}) };
    };
  }
}
