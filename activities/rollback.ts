import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { sql } from 'kysely';
import { appendAuditEventsIn } from '../src/audit/append.ts';
import type { AuditEventInput } from '../src/audit/chain.ts';
import { type PlannedVersion, type RollbackPlan, type RollbackTrigger, sameOutputs } from '../src/domain/rollback.ts';
import { gatewayUrl } from '../src/gateway/address.ts';
import { retainUntilInForce } from '../src/policy/pack.ts';
import { signEnvelope } from '../src/signing/dsse.ts';
import { loadFactoryKey } from '../src/signing/factory-key.ts';
import { putOnce } from '../src/storage/objects.ts';
import { bucket } from '../src/storage/s3.ts';
import { parseS3Uri } from '../src/serving/s3-uri.ts';
import { TritonClient, tritonUrl } from '../src/serving/triton.ts';
import { type ActivityDeps, activityDeps } from './deps.ts';
import { refusedByGuardIsFinal } from './guard-refusal.ts';
import { serveVerified, type DeployResult } from './serving.ts';

// ---- control zone: plan, switch, record ------------------------------------------------------------

interface VersionRow {
  id: number;
  version: number;
  state: string;
  artifact_digest: string;
  artifact_uri: string;
  provenance_uri: string | null;
  provenance_digest: string | null;
  smoke: unknown;
}

/** A version with the smoke inference of its latest deployment; undefined when it was never deployed. */
async function plannedVersion(modelName: string, where: { version: number } | { below: number }): Promise<PlannedVersion | undefined> {
  const { db } = activityDeps();
  const cond = 'version' in where ? sql`m.version = ${where.version}` : sql`m.version < ${where.below} AND m.state = 'deployed'`;
  const { rows } = await sql<VersionRow>`
    SELECT m.id, m.version, m.state, m.artifact_digest, m.artifact_uri, m.provenance_uri, m.provenance_digest, d.smoke
    FROM model_versions m
    JOIN LATERAL (SELECT smoke FROM deployments WHERE model_version_id = m.id ORDER BY deployed_at DESC LIMIT 1) d ON true
    WHERE m.model_name = ${modelName} AND ${cond}
    ORDER BY m.version DESC LIMIT 1`.execute(db);
  const r = rows[0];
  if (!r) return undefined;
  const loc = parseS3Uri(r.artifact_uri);
  const smoke = (typeof r.smoke === 'string' ? JSON.parse(r.smoke) : r.smoke) as { input?: unknown; output?: unknown };
  if (!loc || !isMatrix(smoke.input) || !isMatrix(smoke.output)) {
    throw ApplicationFailure.nonRetryable(`${modelName}@${r.version} has no usable artifact URI or recorded smoke inference`, 'VersionNotEligible');
  }
  return {
    id: r.id,
    version: r.version,
    state: r.state,
    artifactDigest: r.artifact_digest,
    artifactKey: loc.key,
    ...(r.provenance_uri && r.provenance_digest ? { provenance: { uri: r.provenance_uri, digest: r.provenance_digest } } : {}),
    smoke: { input: smoke.input, output: smoke.output },
  };
}

function isMatrix(v: unknown): v is number[][] {
  return (
    Array.isArray(v) && v.length > 0 && v.length <= 64 && v.every((row) => Array.isArray(row) && row.length <= 4096 && row.every((x) => typeof x === 'number'))
  );
}

/**
 * What a rollback of `modelName` does: from the version its live route serves to `toVersion` (which
 * must have been deployed before, be deployed or rolled back now, never retired), or by default to
 * the newest version below the live one that is still `deployed` (served before, never rolled back).
 * Every refusal is final (non-retryable) and says why.
 */
export async function planRollback(input: { modelName: string; toVersion?: number }): Promise<RollbackPlan> {
  const { db } = activityDeps();
  const live = await db
    .selectFrom('gateway_routes as r')
    .innerJoin('model_versions as m', 'm.id', 'r.model_version_id')
    .select(['m.version', 'm.state', 'm.risk_tier'])
    .where('r.model_name', '=', input.modelName)
    .where('r.state', '=', 'live')
    .executeTakeFirst();
  if (!live) throw ApplicationFailure.nonRetryable(`${input.modelName} has no live route: nothing is served, nothing to roll back`, 'NoLiveRoute');
  const from = await plannedVersion(input.modelName, { version: live.version });
  if (!from) throw ApplicationFailure.nonRetryable(`${input.modelName}@${live.version} is live but has no deployment record`, 'NoLiveRoute');
  if (input.toVersion === live.version) {
    throw ApplicationFailure.nonRetryable(`${input.modelName}@${live.version} is the version served now`, 'VersionNotEligible');
  }
  const to = await plannedVersion(input.modelName, input.toVersion === undefined ? { below: live.version } : { version: input.toVersion });
  if (!to) {
    throw ApplicationFailure.nonRetryable(
      input.toVersion === undefined
        ? `${input.modelName} has no deployed version below ${live.version} to roll back to: name one with --to`
        : `${input.modelName}@${input.toVersion} was never deployed (or does not exist): only a version served before can be served again`,
      'VersionNotEligible',
    );
  }
  if (to.state !== 'deployed' && to.state !== 'rolled-back') {
    throw ApplicationFailure.nonRetryable(
      `${input.modelName}@${to.version} is ${to.state}: only a deployed or rolled-back version can be served again`,
      'VersionNotEligible',
    );
  }
  return { modelName: input.modelName, riskTier: live.risk_tier, from, to };
}

export interface SwitchInput {
  rollbackId: string;
  workflowId: string;
  runId: string;
  modelName: string;
  from: { id: number; version: number };
  to: { id: number; version: number; state: string };
  served: Pick<DeployResult, 'tritonModel' | 'tritonVersion' | 'artifactDigest'>;
  trigger: RollbackTrigger;
  requestedBy: string;
  reason: string;
  requestedAt: string;
}

/**
 * The switch, in ONE transaction: the live route's UPDATE (only if it still serves `from`: a deploy
 * or another rollback in between is refused, not overwritten), `from` → rolled-back, `to` → deployed
 * (when it was rolled back), the rollbacks row and the audit event `model.rolled-back`. The gateway
 * hears the route change at COMMIT (NOTIFY, migration 0012). A retry after a commit finds its row
 * and changes nothing.
 */
export async function switchRollbackRoute(input: SwitchInput): Promise<{ switchedAt: string }> {
  const { db } = activityDeps();
  return refusedByGuardIsFinal(() => switchIn(db, input));
}

async function switchIn(db: ActivityDeps['db'], input: SwitchInput): Promise<{ switchedAt: string }> {
  return db.transaction().execute(async (tx) => {
    const done = await tx.selectFrom('rollbacks').select('switched_at').where('id', '=', input.rollbackId).executeTakeFirst();
    if (done) return { switchedAt: new Date(done.switched_at).toISOString() };
    const switchedAt = new Date();
    const updated = await tx
      .updateTable('gateway_routes')
      .set({
        model_version_id: input.to.id,
        triton_model: input.served.tritonModel,
        triton_version: input.served.tritonVersion,
        artifact_digest: input.served.artifactDigest,
        switched_at: switchedAt,
        switched_by: `rollback ${input.rollbackId}`,
        reason: input.reason,
      })
      .where('model_name', '=', input.modelName)
      .where('state', '=', 'live')
      .where('model_version_id', '=', input.from.id)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) {
      throw ApplicationFailure.nonRetryable(
        `the live route of ${input.modelName} no longer serves version ${input.from.version} (deployed or rolled back meanwhile): nothing switched`,
        'RouteChanged',
      );
    }
    await tx
      .updateTable('model_versions')
      .set({ state: 'rolled-back', updated_at: switchedAt })
      .where('id', '=', input.from.id)
      .where('state', '=', 'deployed')
      .execute();
    if (input.to.state === 'rolled-back') {
      await tx
        .updateTable('model_versions')
        .set({ state: 'deployed', updated_at: switchedAt })
        .where('id', '=', input.to.id)
        .where('state', '=', 'rolled-back')
        .execute();
    }
    await tx
      .insertInto('rollbacks')
      .values({
        id: input.rollbackId,
        model_name: input.modelName,
        from_version_id: input.from.id,
        to_version_id: input.to.id,
        from_version: input.from.version,
        to_version: input.to.version,
        trigger: input.trigger,
        requested_by: input.requestedBy,
        reason: input.reason,
        artifact_digest: input.served.artifactDigest,
        requested_at: input.requestedAt,
        switched_at: switchedAt,
      })
      .execute();
    const event: AuditEventInput = {
      workflowId: input.workflowId,
      runId: input.runId,
      step: 'model.rolled-back',
      kind: 'model.rolled-back',
      actor: input.requestedBy,
      payload: {
        modelName: input.modelName,
        fromVersion: input.from.version,
        toVersion: input.to.version,
        artifactDigest: input.served.artifactDigest,
        trigger: input.trigger,
        reason: input.reason,
        requestedAt: input.requestedAt,
        switchedAt: switchedAt.toISOString(),
      },
      occurredAt: switchedAt.toISOString(),
    };
    await appendAuditEventsIn(tx, [event]);
    return { switchedAt: switchedAt.toISOString() };
  });
}

/** The rollback's measured recovery (its RTO) as a fact, with the audit event `rollback.recovered`, in one transaction. */
export async function recordRollbackRecovery(input: {
  rollbackId: string;
  workflowId: string;
  runId: string;
  modelName: string;
  toVersion: number;
  firstCorrectAt: string;
  rtoMs: number;
  verifiedVia: 'gateway' | 'triton';
}): Promise<void> {
  const { db } = activityDeps();
  await db.transaction().execute(async (tx) => {
    const inserted = await tx
      .insertInto('rollback_recoveries')
      .values({ rollback_id: input.rollbackId, first_correct_at: input.firstCorrectAt, rto_ms: input.rtoMs, verified_via: input.verifiedVia })
      .onConflict((oc) => oc.column('rollback_id').doNothing())
      .returning('rollback_id')
      .executeTakeFirst();
    if (!inserted) return;
    await appendAuditEventsIn(tx, [
      {
        workflowId: input.workflowId,
        runId: input.runId,
        step: 'rollback.recovered',
        kind: 'rollback.recovered',
        actor: 'factory',
        payload: {
          modelName: input.modelName,
          toVersion: input.toVersion,
          firstCorrectAt: input.firstCorrectAt,
          rtoMs: input.rtoMs,
          verifiedVia: input.verifiedVia,
        },
        occurredAt: input.firstCorrectAt,
      },
    ]);
  });
}

// ---- serving zone: load verified, see the first correct answer ----------------------------------------

/**
 * Serves a version again for a rollback (or on a drill's shadow model): the deployment's own
 * verification and load (serveVerified: provenance, digest, load, readiness, smoke), for a version
 * that is deployed or rolled back. The smoke answer must equal the one recorded at its deployment.
 */
export async function serveForRollback(input: { version: PlannedVersion; tritonModel?: string }): Promise<DeployResult> {
  const v = input.version;
  const served = await serveVerified(
    { modelVersionId: v.id, artifactKey: v.artifactKey, smokeInput: v.smoke.input, ...(v.provenance ? { provenance: v.provenance } : {}) },
    { allowedStates: ['deployed', 'rolled-back'], ...(input.tritonModel ? { tritonModel: input.tritonModel } : {}) },
  );
  if (!sameOutputs(served.smokeOutput, v.smoke.output)) {
    throw ApplicationFailure.nonRetryable(
      `${served.tritonModel}@${v.version} answered ${JSON.stringify(served.smokeOutput).slice(0, 200)} to its recorded smoke input, not ${JSON.stringify(v.smoke.output).slice(0, 200)}`,
      'SmokeDiffers',
    );
  }
  return served;
}

/**
 * Waits for the first correct inference on `version` of route `routeModel`: through the gateway with
 * the service key (FACTORY_GATEWAY_SERVICE_KEY), or Triton directly without one. Correct means the
 * answer names `version` and equals the smoke output recorded at its deployment. Polls every 50 ms;
 * returns when it was seen (the RTO's end) and how many tries it took.
 */
export async function awaitFirstCorrectInference(input: {
  routeModel: string;
  tritonModel: string;
  version: number;
  smoke: { input: number[][]; output: number[][] };
  timeoutMs?: number;
}): Promise<{ at: string; via: 'gateway' | 'triton'; attempts: number }> {
  const { env } = activityDeps();
  const ctx = Context.current();
  const key = env.FACTORY_GATEWAY_SERVICE_KEY;
  const via = key ? 'gateway' : 'triton';
  const url = key
    ? `${gatewayUrl(env)}/v2/models/${encodeURIComponent(input.routeModel)}/infer`
    : `${tritonUrl(env)}/v2/models/${encodeURIComponent(input.tritonModel)}/versions/${input.version}/infer`;
  const width = input.smoke.input[0]?.length ?? 0;
  const body = JSON.stringify({ inputs: [{ name: 'input', shape: [input.smoke.input.length, width], datatype: 'FP32', data: input.smoke.input.flat() }] });
  const deadline = Date.now() + (input.timeoutMs ?? 60_000);
  let last = '';
  for (let attempts = 1; Date.now() < deadline; attempts++) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body,
        signal: AbortSignal.timeout(5_000),
      });
      const at = new Date().toISOString();
      const text = await res.text();
      if (res.ok) {
        const out = JSON.parse(text) as { model_version?: string; outputs?: Array<{ shape: number[]; data: number[] }> };
        const o = out.outputs?.[0];
        const cols = o?.shape[1] ?? 1;
        const rows = o ? Array.from({ length: o.shape[0] ?? 0 }, (_, i) => o.data.slice(i * cols, (i + 1) * cols)) : [];
        if (out.model_version === String(input.version) && sameOutputs(rows, input.smoke.output)) return { at, via, attempts };
        last = `version ${out.model_version} answered ${JSON.stringify(rows).slice(0, 120)}`;
      } else {
        last = `${res.status}: ${text.slice(0, 200)}`;
        // A key the gateway does not know, or a use case without this model, will not heal: say so now.
        if (res.status === 401 || res.status === 403) {
          throw ApplicationFailure.nonRetryable(`the gateway refused the service key (FACTORY_GATEWAY_SERVICE_KEY): ${last}`, 'ServiceKeyRefused');
        }
      }
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      last = (err as Error).message;
    }
    if (attempts % 20 === 0) ctx.heartbeat({ attempts, last });
    await sleep(50);
  }
  throw ApplicationFailure.retryable(`no correct inference from ${input.routeModel}@${input.version} via ${via} in time; last: ${last}`, 'NotServedYet');
}

/** Unloads a drill's shadow model from Triton (its route stays, pointing at what it served last). */
export async function unloadShadow(input: { tritonModel: string }): Promise<void> {
  const { env } = activityDeps();
  if (!input.tritonModel.endsWith('--shadow')) throw ApplicationFailure.nonRetryable(`${input.tritonModel} is not a shadow model`, 'NotShadow');
  await new TritonClient(tritonUrl(env)).unload(input.tritonModel);
}

// ---- drills ---------------------------------------------------------------------------------------

/**
 * Points a drill's shadow route (`<model>--shadow`, state `shadow`) at a version loaded on the shadow
 * Triton model. Never touches a live row: a live route that happens to bear the shadow's name is
 * refused (the upsert's WHERE keeps it), and the registry is not changed (a drill rehearses, it
 * rolls nothing back).
 */
export async function switchShadowRoute(input: {
  drillId: string;
  shadowModel: string;
  to: { id: number; version: number };
  served: Pick<DeployResult, 'tritonModel' | 'tritonVersion' | 'artifactDigest'>;
  leg: string;
}): Promise<void> {
  const { db } = activityDeps();
  const route = {
    model_version_id: input.to.id,
    triton_model: input.served.tritonModel,
    triton_version: input.served.tritonVersion,
    artifact_digest: input.served.artifactDigest,
    state: 'shadow' as const,
    switched_at: new Date(),
    switched_by: `drill ${input.drillId}`,
    reason: `drill: ${input.leg}`,
  };
  const res = await db
    .insertInto('gateway_routes')
    .values({ model_name: input.shadowModel, ...route })
    .onConflict((oc) => oc.column('model_name').doUpdateSet(route).where('gateway_routes.state', '=', 'shadow'))
    .executeTakeFirst();
  if (Number(res.numInsertedOrUpdatedRows ?? 0) !== 1) {
    throw ApplicationFailure.nonRetryable(`${input.shadowModel} is a route that is not a shadow: a drill never touches it`, 'ShadowNameTaken');
  }
}

export interface DrillRecord {
  drillId: string;
  runId: string;
  modelName: string;
  shadowModel: string;
  liveVersion?: number;
  previousVersion?: number;
  verdict: 'passed' | 'failed' | 'exceeded-rto';
  rtoMs?: number;
  forwardMs?: number;
  policyRtoSeconds?: number;
  reason?: string;
  requestedBy: string;
  startedAt: string;
  finishedAt: string;
}

export const DRILL_PAYLOAD_TYPE = 'application/vnd.ai-factory.rollback-drill+json';

/**
 * A drill's evidence: a DSSE-signed record under Object Lock (evidence bucket, the pack's
 * `evaluations` retention), then its rollback_drills row and its audit event in one transaction:
 * `drill.passed`, or the finding `drill.failed` / `drill.exceeded-rto`. Idempotent (putOnce; the row's
 * key is the drill's id). Without a signing key the record is kept unsigned in the database only.
 */
export async function recordDrill(input: DrillRecord): Promise<{ evidenceUri?: string; evidenceDigest?: string }> {
  const { db, env, s3, log } = activityDeps();
  const existing = await db.selectFrom('rollback_drills').select(['evidence_uri', 'evidence_digest']).where('id', '=', input.drillId).executeTakeFirst();
  if (existing)
    return {
      ...(existing.evidence_uri ? { evidenceUri: existing.evidence_uri } : {}),
      ...(existing.evidence_digest ? { evidenceDigest: existing.evidence_digest } : {}),
    };
  let evidence: { uri: string; digest: string } | undefined;
  try {
    const envelope = signEnvelope(loadFactoryKey(env), DRILL_PAYLOAD_TYPE, JSON.stringify({ kind: 'rollback-drill', ...input }));
    const put = await putOnce(s3, bucket(env, 'evidence'), `drills/${input.modelName}/${input.drillId}.dsse.json`, `${JSON.stringify(envelope)}\n`, {
      contentType: 'application/json',
      retainUntil: retainUntilInForce('evaluations', new Date(input.finishedAt)),
    });
    evidence = { uri: put.uri, digest: put.digest };
  } catch (err) {
    log.warn({ err: (err as Error).message, drill: input.drillId }, 'drill evidence not signed or not stored; the row and the audit event still record it');
  }
  const kind = input.verdict === 'passed' ? 'drill.passed' : `drill.${input.verdict}`;
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('rollback_drills')
      .values({
        id: input.drillId,
        model_name: input.modelName,
        shadow_model: input.shadowModel,
        live_version: input.liveVersion ?? null,
        previous_version: input.previousVersion ?? null,
        verdict: input.verdict,
        rto_ms: input.rtoMs ?? null,
        forward_ms: input.forwardMs ?? null,
        policy_rto_seconds: input.policyRtoSeconds ?? null,
        reason: input.reason ?? null,
        evidence_uri: evidence?.uri ?? null,
        evidence_digest: evidence?.digest ?? null,
        requested_by: input.requestedBy,
        started_at: input.startedAt,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    await appendAuditEventsIn(tx, [
      {
        workflowId: input.drillId,
        runId: input.runId,
        step: kind,
        kind,
        actor: input.requestedBy,
        payload: {
          modelName: input.modelName,
          shadowModel: input.shadowModel,
          liveVersion: input.liveVersion ?? null,
          previousVersion: input.previousVersion ?? null,
          verdict: input.verdict,
          finding: input.verdict !== 'passed',
          rtoMs: input.rtoMs ?? null,
          forwardMs: input.forwardMs ?? null,
          policyRtoSeconds: input.policyRtoSeconds ?? null,
          reason: input.reason ?? null,
          evidenceUri: evidence?.uri ?? null,
          evidenceDigest: evidence?.digest ?? null,
        },
        occurredAt: input.finishedAt,
      },
    ]);
  });
  return evidence ? { evidenceUri: evidence.uri, evidenceDigest: evidence.digest } : {};
}
