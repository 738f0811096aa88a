import { type Transaction, sql } from 'kysely';
import { ApplicationFailure } from '@temporalio/activity';
import { appendAuditEventsIn } from '../src/audit/append.ts';
import { boundedText } from '../src/audit/bounded-text.ts';
import type { Database } from '../src/db/schema.ts';
import type { DecisionRecord, DecisionWithEvent } from '../src/domain/approval.ts';

export type { DecisionRecord, DecisionWithEvent };
import type { ModelState } from '../src/db/schema.ts';
import { MODEL_STATE_TRANSITIONS } from '../src/domain/model-state.ts';
import { customFacet, datasetRef } from '../src/lineage/openlineage.ts';
import { activityDeps } from './deps.ts';
import { withLineage } from './lineage.ts';

export interface RegisterInput {
  workflowId: string;
  /**
   * The run that registers (workflowInfo().runId): a lifecycle retried after a failure is a new run
   * under the same workflow id and registers its own version. Absent only from activities scheduled
   * by code older than runs being told apart; those keep one row per workflow id.
   */
  runId?: string;
  modelName: string;
  riskTier: string;
  artifactDigest: string;
  artifactUri: string;
  datasetManifestDigest: string;
  commitSha: string;
  imageDigest: string;
  requester: string;
  developer: string;
  metrics: Record<string, number>;
  environment: Record<string, unknown>;
  policyDigest: string;
  /** The version's signed provenance (activities/provenance.ts); absent from lifecycles older than it. */
  provenance?: { uri: string; digest: string; keyId: string };
}

/** Registers the candidate as the model's next version. One row per lifecycle run: a retried activity returns it. */
export async function registerModel(input: RegisterInput): Promise<{ id: number; version: number }> {
  const artifact = {
    ...datasetRef(input.artifactUri),
    facets: { factory_artifact: customFacet('ArtifactDatasetFacet', { artifactDigest: input.artifactDigest, imageDigest: input.imageDigest }) },
  };
  return withLineage(
    `factory.register.${input.modelName}`,
    { inputs: [artifact] },
    () => register(input),
    (mv) => ({
      inputs: [artifact],
      runFacets: {
        factory_registration: customFacet('RegistrationRunFacet', {
          modelName: input.modelName,
          version: mv.version,
          riskTier: input.riskTier,
          datasetManifestDigest: input.datasetManifestDigest,
          commitSha: input.commitSha,
          policyDigest: input.policyDigest,
          ...(input.provenance ? { provenanceUri: input.provenance.uri, provenanceDigest: input.provenance.digest } : {}),
        }),
      },
    }),
  );
}

async function register(input: RegisterInput): Promise<{ id: number; version: number }> {
  const { db } = activityDeps();
  const runId = input.runId ?? null;
  // The conflict target names the unique index the row falls under (migration 0004): per run, or per workflow id for older callers.
  const conflict = runId === null ? sql`ON CONFLICT (workflow_id) WHERE run_id IS NULL DO NOTHING` : sql`ON CONFLICT (workflow_id, run_id) DO NOTHING`;
  await sql`
    INSERT INTO model_versions (model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest,
      commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id, run_id,
      provenance_uri, provenance_digest, provenance_key_id)
    SELECT ${input.modelName}, COALESCE(MAX(version), 0) + 1, 'registered', ${input.riskTier}, ${input.artifactDigest}, ${input.artifactUri},
      ${input.datasetManifestDigest}, ${input.commitSha}, ${input.imageDigest}, ${input.requester}, ${input.developer},
      ${JSON.stringify(input.metrics)}::jsonb, ${JSON.stringify(input.environment)}::jsonb, ${input.policyDigest}, ${input.workflowId}, ${runId},
      ${input.provenance?.uri ?? null}, ${input.provenance?.digest ?? null}, ${input.provenance?.keyId ?? null}
    FROM model_versions WHERE model_name = ${input.modelName}
    ${conflict}`.execute(db);
  const row = await db
    .selectFrom('model_versions')
    .select(['id', 'version'])
    .where('workflow_id', '=', input.workflowId)
    .where((eb) => (runId === null ? eb('run_id', 'is', null) : eb('run_id', '=', runId)))
    .executeTakeFirstOrThrow();
  return { id: row.id, version: row.version };
}

/** Moves a version along registered → validated → approved → deployed (or to rejected, failed, cancelled). Idempotent. */
export async function setModelState(input: { id: number; to: ModelState }): Promise<void> {
  const { db } = activityDeps();
  const row = await db.selectFrom('model_versions').select('state').where('id', '=', input.id).executeTakeFirstOrThrow();
  if (row.state === input.to) return;
  if (!MODEL_STATE_TRANSITIONS[row.state].includes(input.to)) {
    throw ApplicationFailure.nonRetryable(`model version ${input.id} cannot go from ${row.state} to ${input.to}`, 'IllegalTransition');
  }
  await db.updateTable('model_versions').set({ state: input.to, updated_at: new Date() }).where('id', '=', input.id).where('state', '=', row.state).execute();
}

export interface LifecycleEndInput {
  workflowId: string;
  /** The run that ends (workflowInfo().runId): the event id is `<workflowId>/<runId>/lifecycle.<outcome>`. */
  runId: string;
  /** The version this lifecycle registered, when it got that far. */
  modelVersionId?: number;
  outcome: 'failed' | 'cancelled';
  /** What ended it (a root cause, a cancellation reason): bounded and escaped before it is stored. */
  cause: string;
  /** Who ended it, when someone did (the cancelRequest signal's `by`); default `factory`. Bounded and escaped too. */
  actor?: string;
  /** UTC ISO time from the workflow's clock. */
  at: string;
}

export interface LifecycleEndResult {
  eventId: string;
  /** The event was already recorded (a retried activity): nothing was written this time. */
  duplicate: boolean;
  /** The version and what became of it: `to` equals `from` when it was already final (deployed, rejected, failed, cancelled). */
  modelVersion?: { id: number; from: ModelState; to: ModelState };
}

export const LIFECYCLE_END_CAUSE_MAX = 2_000;
const ACTOR_MAX = 320;

/**
 * Ends a lifecycle that failed or was cancelled with a recorded, final state: its version (when it
 * registered one and it is not final already) moves to `failed` or `cancelled`, and the terminal
 * audit event `lifecycle.failed` / `lifecycle.cancelled` is appended, both in one transaction.
 * Idempotent: a retry finds the state already moved and the event (its id derives from workflow id,
 * run id and step) already there. Needs no activity Context: callable from tests and tools too.
 */
export async function recordLifecycleEnd(input: LifecycleEndInput): Promise<LifecycleEndResult> {
  const bad = (why: string) => ApplicationFailure.nonRetryable(`recordLifecycleEnd: ${why}`, 'InvalidInput');
  for (const k of ['workflowId', 'runId'] as const) {
    if (typeof input[k] !== 'string' || !input[k] || input[k].length > 1_000) throw bad(`${k} must be a non-empty string of at most 1000 characters`);
  }
  if (input.outcome !== 'failed' && input.outcome !== 'cancelled') throw bad('outcome must be "failed" or "cancelled"');
  if (typeof input.cause !== 'string') throw bad('cause must be a string');
  if (input.actor !== undefined && typeof input.actor !== 'string') throw bad('actor must be a string');
  if (typeof input.at !== 'string' || input.at.length > 40 || Number.isNaN(Date.parse(input.at))) throw bad('at must be an ISO time');
  if (input.modelVersionId !== undefined && !(Number.isSafeInteger(input.modelVersionId) && input.modelVersionId > 0))
    throw bad('modelVersionId must be a positive integer');

  const { db } = activityDeps();
  const kind = `lifecycle.${input.outcome}`;
  const cause = boundedText(input.cause, LIFECYCLE_END_CAUSE_MAX) || 'no cause given';
  const actor = input.actor ? boundedText(input.actor, ACTOR_MAX) : 'factory';
  return db.transaction().execute(async (tx) => {
    let modelVersion: LifecycleEndResult['modelVersion'];
    if (input.modelVersionId !== undefined) {
      // The registry row first: the audit append switches the transaction to the audit writer's role.
      const row = await tx.selectFrom('model_versions').select(['state', 'workflow_id']).where('id', '=', input.modelVersionId).forUpdate().executeTakeFirst();
      if (!row || row.workflow_id !== input.workflowId) {
        throw ApplicationFailure.nonRetryable(`model version ${input.modelVersionId} is not one of lifecycle ${input.workflowId}`, 'UnknownModelVersion');
      }
      const to = MODEL_STATE_TRANSITIONS[row.state].includes(input.outcome) ? input.outcome : row.state;
      if (to !== row.state) await tx.updateTable('model_versions').set({ state: to, updated_at: new Date() }).where('id', '=', input.modelVersionId).execute();
      modelVersion = { id: input.modelVersionId, from: row.state, to };
    }
    const [appended] = await appendAuditEventsIn(tx, [
      {
        workflowId: input.workflowId,
        runId: input.runId,
        step: kind,
        kind,
        actor,
        payload: { outcome: input.outcome, cause, ...(modelVersion ? { modelVersion } : {}) },
        occurredAt: input.at,
      },
    ]);
    return { eventId: appended!.eventId, duplicate: appended!.duplicate, ...(modelVersion ? { modelVersion } : {}) };
  });
}

/** Keeps every decision, accepted or refused, with its reason. The id makes a retry a no-op. */
export async function recordDecision(r: DecisionRecord): Promise<void> {
  const { db } = activityDeps();
  await db.transaction().execute((tx) => insertDecision(tx, r));
}

async function insertDecision(tx: Transaction<Database>, r: DecisionRecord): Promise<void> {
  await tx
    .insertInto('approvals')
    .values({
      id: r.id,
      model_version_id: r.modelVersionId,
      workflow_id: r.workflowId,
      decision: r.decision,
      approver: storable(r.approver),
      role: storable(r.role),
      meaning: storable(r.meaning),
      model_digest: storable(r.modelDigest),
      comment: r.comment === undefined ? null : storable(r.comment),
      accepted: r.accepted,
      refusal_reason: r.refusalReason === undefined ? null : storable(r.refusalReason),
      policy_digest: r.policyDigest,
      decided_at: new Date(r.decidedAt),
      ...(r.signature
        ? {
            key_fingerprint: r.signature.keyFingerprint,
            public_key: r.signature.publicKey,
            signed_statement: r.signature.statement,
            signature: r.signature.signature,
            signed_at: new Date(r.signature.signedAt),
            signature_verified: r.signature.verified,
          }
        : {}),
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

/**
 * PostgreSQL refuses NUL in text and jsonb, and lone surrogates cannot be encoded as UTF-8. The gate
 * already refuses such payloads; this keeps a forged one from making the write fail (and retry) anyway.
 */
function storable(s: string): string {
  return s.replace(/\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

function storableDeep(v: unknown): unknown {
  if (typeof v === 'string') return storable(v);
  if (Array.isArray(v)) return v.map(storableDeep);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [storable(k), storableDeep(x)]));
  return v;
}

/**
 * Records a batch of judged decisions: each registry row and its audit event commit together, in the
 * gate's order. A batch keeps thousands of refusals to a few activities. A value the database refuses
 * (SQLSTATE class 22, data exception) is not retried: the same bytes would be refused forever.
 */
export async function recordDecisions(batch: DecisionWithEvent[]): Promise<{ recorded: number }> {
  const { db } = activityDeps();
  try {
    await db.transaction().execute(async (tx) => {
      for (const { record } of batch) await insertDecision(tx, record);
      await appendAuditEventsIn(
        tx,
        batch.map(({ event }) => ({ ...event, actor: storable(event.actor), payload: storableDeep(event.payload) as Record<string, unknown> })),
      );
    });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('22')) {
      throw ApplicationFailure.nonRetryable(
        `the database refused a decision record (SQLSTATE ${code}): ${(err as Error).message.slice(0, 200)}`,
        'UnstorableDecision',
      );
    }
    throw err;
  }
  return { recorded: batch.length };
}

export async function recordDeployment(r: {
  id: string;
  modelVersionId: number;
  tritonModel: string;
  tritonVersion: number;
  endpoint: string;
  artifactDigest: string;
  smoke: Record<string, unknown>;
  deployedAt: string;
}): Promise<void> {
  const { db } = activityDeps();
  await db.transaction().execute(async (tx) => {
    const inserted = await tx
      .insertInto('deployments')
      .values({
        id: r.id,
        model_version_id: r.modelVersionId,
        triton_model: r.tritonModel,
        triton_version: r.tritonVersion,
        endpoint: r.endpoint,
        artifact_digest: r.artifactDigest,
        smoke: JSON.stringify(r.smoke),
        deployed_at: new Date(r.deployedAt),
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return; // a retry: the route was switched with the first insert
    // The gateway serves the version just deployed: its model's route switches in the same commit.
    const model = await tx.selectFrom('model_versions').select('model_name').where('id', '=', r.modelVersionId).executeTakeFirstOrThrow();
    const route = {
      model_version_id: r.modelVersionId,
      triton_model: r.tritonModel,
      triton_version: r.tritonVersion,
      artifact_digest: r.artifactDigest,
      state: 'live' as const,
      switched_at: new Date(r.deployedAt),
      switched_by: `deployment ${r.id}`,
      reason: 'deployed',
    };
    await tx
      .insertInto('gateway_routes')
      .values({ model_name: model.model_name, ...route })
      .onConflict((oc) => oc.column('model_name').doUpdateSet(route))
      .execute();
  });
}
