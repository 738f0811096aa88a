import { ActivityFailure, ApplicationFailure, proxyActivities, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import type { controlActivities, servingActivities } from '../activities/index.ts';
import { boundedText } from '../src/audit/bounded-text.ts';
import {
  type DrillInput,
  type DrillOutcome,
  type PlannedVersion,
  type RollbackInput,
  type RollbackOutcome,
  drillInputSchema,
  rollbackInputSchema,
  shadowModelName,
} from '../src/domain/rollback.ts';
import { queuesFor } from '../src/domain/task-queues.ts';

/** The activities a rollback and a drill use, with their zones' timeouts. */
export function rollbackActivities() {
  const zones = queuesFor(workflowInfo().taskQueue);
  // Registry writes wait out a database outage (like the lifecycle's); a refused plan is final at once.
  const control = proxyActivities<typeof controlActivities>({
    taskQueue: zones.control,
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '500 milliseconds', maximumInterval: '10 seconds' },
  });
  // Loading heartbeats through each phase (serveVerified): a lost worker is noticed in 30 s.
  const serving = proxyActivities<typeof servingActivities>({
    taskQueue: zones.serving,
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
  });
  const check = proxyActivities<typeof servingActivities>({
    taskQueue: zones.serving,
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumAttempts: 3 },
  });
  return { control, serving, check };
}

/** The root cause's message of an activity failure (what the trail and the CLI should say). */
export function causeOf(err: unknown): { type: string; message: string } {
  const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : err instanceof ApplicationFailure ? err : undefined;
  return { type: cause?.type ?? 'Error', message: boundedText(cause?.message ?? (err as Error)?.message ?? String(err), 500) };
}

/**
 * Rolls a model back to a version served before (issue 9, item 3). Workflow type `modelRollback`,
 * id `rollback-<model>-<unique>` (stable API: the monitor workflow starts it for an automatic
 * rollback). Plans (the live version, the target), serves the target again through the deployment's
 * own verification (provenance, digest, load, smoke equal to the recorded one), switches the live
 * gateway route with the registry change, the rollbacks row and `model.rolled-back` in one
 * transaction, then waits for the first correct inference on the target and records the RTO (the
 * workflow's start → that answer). A rollback that cannot be done ends FAILED with its cause, recorded
 * in the trail as `rollback.failed`; the live route is switched only after the target is verified
 * and loaded, so a failed rollback leaves serving as it was.
 */
export async function modelRollback(raw: RollbackInput): Promise<RollbackOutcome> {
  const parsed = rollbackInputSchema.safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(`invalid rollback input: ${boundedText(why, 500)}`, 'InvalidRollbackInput');
  }
  const input = parsed.data;
  const { workflowId, runId, startTime } = workflowInfo();
  const { control, serving, check } = rollbackActivities();
  const requestedAt = startTime.toISOString();
  try {
    setCurrentDetails(`Planning the rollback of ${input.modelName}`);
    const plan = await control.planRollback({ modelName: input.modelName, ...(input.toVersion !== undefined ? { toVersion: input.toVersion } : {}) });
    setCurrentDetails(`Serving ${input.modelName}@${plan.to.version} again (verified), live is @${plan.from.version}`);
    const served = await serving.serveForRollback({ version: plan.to });
    const { switchedAt } = await control.switchRollbackRoute({
      rollbackId: workflowId,
      workflowId,
      runId,
      modelName: input.modelName,
      from: { id: plan.from.id, version: plan.from.version },
      to: { id: plan.to.id, version: plan.to.version, state: plan.to.state },
      served: { tritonModel: served.tritonModel, tritonVersion: served.tritonVersion, artifactDigest: served.artifactDigest },
      trigger: input.trigger,
      requestedBy: input.requestedBy,
      reason: input.reason,
      requestedAt,
    });
    setCurrentDetails(`Switched ${input.modelName} to @${plan.to.version}; waiting for its first correct inference`);
    const first = await check.awaitFirstCorrectInference({
      routeModel: input.modelName,
      tritonModel: served.tritonModel,
      version: plan.to.version,
      smoke: plan.to.smoke,
    });
    const rtoMs = Math.max(0, Date.parse(first.at) - startTime.getTime());
    await control.recordRollbackRecovery({
      rollbackId: workflowId,
      workflowId,
      runId,
      modelName: input.modelName,
      toVersion: plan.to.version,
      firstCorrectAt: first.at,
      rtoMs,
      verifiedVia: first.via,
    });
    setCurrentDetails(`Rolled back ${input.modelName} @${plan.from.version} → @${plan.to.version} in ${(rtoMs / 1000).toFixed(1)} s`);
    return {
      modelName: input.modelName,
      fromVersion: plan.from.version,
      toVersion: plan.to.version,
      rtoMs,
      verifiedVia: first.via,
      rollbackId: workflowId,
      artifactDigest: served.artifactDigest,
      trigger: input.trigger,
      requestedBy: input.requestedBy,
      reason: input.reason,
      switchedAt,
      firstCorrectAt: first.at,
    };
  } catch (err) {
    const cause = causeOf(err);
    await control.appendAudit({
      workflowId,
      runId,
      step: 'rollback.failed',
      kind: 'rollback.failed',
      actor: input.requestedBy,
      payload: { modelName: input.modelName, toVersion: input.toVersion ?? null, trigger: input.trigger, reason: input.reason, cause },
      occurredAt: new Date().toISOString(),
    });
    throw ApplicationFailure.nonRetryable(`rollback of ${input.modelName} failed: ${cause.type}: ${cause.message}`, cause.type);
  }
}

/**
 * A rollback drill (issue 9, item 4), workflow type `rollbackDrill`: the rollback a real one would do
 * (the same plan), rehearsed on a SHADOW deployment: the live and previous versions are loaded (same
 * verification) under Triton model `<model>--shadow`, served through the gateway route of that name
 * (state `shadow`), switched back and forward, each leg's first correct inference awaited. Live
 * traffic, the live route and the registry are never touched. The verdict (passed, failed,
 * exceeded-rto against the tier's `rollbackRtoSeconds`) is recorded as evidence: a signed record under
 * Object Lock, a rollback_drills row and the audit event `drill.passed` or the finding
 * `drill.failed` / `drill.exceeded-rto`. The workflow completes with the verdict (a failed drill is a
 * finding, not a workflow failure), and unloads the shadow model.
 */
export async function rollbackDrill(raw: DrillInput): Promise<DrillOutcome> {
  const parsed = drillInputSchema.safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(`invalid drill input: ${boundedText(why, 500)}`, 'InvalidDrillInput');
  }
  const input = parsed.data;
  const { workflowId, runId } = workflowInfo();
  const { control, serving, check } = rollbackActivities();
  const shadowModel = shadowModelName(input.modelName);
  const startedAt = new Date().toISOString();
  const outcome: DrillOutcome = { drillId: workflowId, modelName: input.modelName, shadowModel, verdict: 'failed' };
  let loaded = false;
  try {
    setCurrentDetails(`Drill on ${shadowModel}: planning`);
    const plan = await control.planRollback({ modelName: input.modelName });
    outcome.liveVersion = plan.from.version;
    outcome.previousVersion = plan.to.version;
    const policy = await control.loadPolicy();
    outcome.policyRtoSeconds = policy.pack.riskTiers[plan.riskTier as keyof typeof policy.pack.riskTiers]?.rollbackRtoSeconds ?? 900;

    /** One leg: load `v` on the shadow model (verified), point the shadow route at it, await its first correct answer. */
    const leg = async (name: string, v: PlannedVersion): Promise<number> => {
      setCurrentDetails(`Drill on ${shadowModel}: ${name} (v${v.version})`);
      const t0 = Date.now();
      const served = await serving.serveForRollback({ version: v, tritonModel: shadowModel });
      loaded = true;
      await control.switchShadowRoute({ drillId: workflowId, shadowModel, to: { id: v.id, version: v.version }, served, leg: name });
      const first = await check.awaitFirstCorrectInference({ routeModel: shadowModel, tritonModel: shadowModel, version: v.version, smoke: v.smoke });
      return Math.max(0, Date.parse(first.at) - t0);
    };
    await leg('start as live', plan.from);
    outcome.rtoMs = await leg('roll back', plan.to);
    outcome.forwardMs = await leg('roll forward', plan.from);
    outcome.verdict = outcome.rtoMs > outcome.policyRtoSeconds * 1000 ? 'exceeded-rto' : 'passed';
    if (outcome.verdict === 'exceeded-rto')
      outcome.reason = `rollback took ${outcome.rtoMs} ms, the ${plan.riskTier} tier allows ${outcome.policyRtoSeconds} s`;
  } catch (err) {
    const cause = causeOf(err);
    outcome.verdict = 'failed';
    outcome.reason = `${cause.type}: ${cause.message}`;
  }
  if (loaded) {
    try {
      await check.unloadShadow({ tritonModel: shadowModel });
    } catch {
      // The shadow stays loaded until the next drill or a Triton restart; the verdict stands.
    }
  }
  const evidence = await control.recordDrill({
    drillId: workflowId,
    runId,
    modelName: input.modelName,
    shadowModel,
    ...(outcome.liveVersion !== undefined ? { liveVersion: outcome.liveVersion } : {}),
    ...(outcome.previousVersion !== undefined ? { previousVersion: outcome.previousVersion } : {}),
    verdict: outcome.verdict,
    ...(outcome.rtoMs !== undefined ? { rtoMs: outcome.rtoMs } : {}),
    ...(outcome.forwardMs !== undefined ? { forwardMs: outcome.forwardMs } : {}),
    ...(outcome.policyRtoSeconds !== undefined ? { policyRtoSeconds: outcome.policyRtoSeconds } : {}),
    ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}),
    requestedBy: input.requestedBy,
    startedAt,
    finishedAt: new Date().toISOString(),
  });
  if (evidence.evidenceUri) outcome.evidenceUri = evidence.evidenceUri;
  setCurrentDetails(`Drill on ${shadowModel}: ${outcome.verdict}${outcome.rtoMs !== undefined ? `, RTO ${(outcome.rtoMs / 1000).toFixed(1)} s` : ''}`);
  return outcome;
}
