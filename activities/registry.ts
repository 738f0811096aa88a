import { type Transaction, sql } from 'kysely';
import { ApplicationFailure } from '@temporalio/activity';
import { appendAuditEventsIn } from '../src/audit/append.ts';
import type { Database } from '../src/db/schema.ts';
import type { DecisionRecord, DecisionWithEvent } from '../src/domain/approval.ts';

export type { DecisionRecord, DecisionWithEvent };
import type { ModelState } from '../src/db/schema.ts';
import { activityDeps } from './deps.ts';

export interface RegisterInput {
  workflowId: string;
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
}

/** Registers the candidate as the model's next version. One row per lifecycle: a retry returns it. */
export async function registerModel(input: RegisterInput): Promise<{ id: number; version: number }> {
  const { db } = activityDeps();
  await sql`
    INSERT INTO model_versions (model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest,
      commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id)
    SELECT ${input.modelName}, COALESCE(MAX(version), 0) + 1, 'registered', ${input.riskTier}, ${input.artifactDigest}, ${input.artifactUri},
      ${input.datasetManifestDigest}, ${input.commitSha}, ${input.imageDigest}, ${input.requester}, ${input.developer},
      ${JSON.stringify(input.metrics)}::jsonb, ${JSON.stringify(input.environment)}::jsonb, ${input.policyDigest}, ${input.workflowId}
    FROM model_versions WHERE model_name = ${input.modelName}
    ON CONFLICT (workflow_id) DO NOTHING`.execute(db);
  const row = await db.selectFrom('model_versions').select(['id', 'version']).where('workflow_id', '=', input.workflowId).executeTakeFirstOrThrow();
  return { id: row.id, version: row.version };
}

const TRANSITIONS: Record<ModelState, ModelState[]> = {
  registered: ['validated', 'rejected'],
  validated: ['approved', 'rejected'],
  approved: ['deployed', 'rejected'],
  deployed: [],
  rejected: [],
};

/** Moves a version along registered → validated → approved → deployed (or to rejected). Idempotent. */
export async function setModelState(input: { id: number; to: ModelState }): Promise<void> {
  const { db } = activityDeps();
  const row = await db.selectFrom('model_versions').select('state').where('id', '=', input.id).executeTakeFirstOrThrow();
  if (row.state === input.to) return;
  if (!TRANSITIONS[row.state].includes(input.to)) {
    throw ApplicationFailure.nonRetryable(`model version ${input.id} cannot go from ${row.state} to ${input.to}`, 'IllegalTransition');
  }
  await db.updateTable('model_versions').set({ state: input.to, updated_at: new Date() }).where('id', '=', input.id).where('state', '=', row.state).execute();
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
      throw ApplicationFailure.nonRetryable(`the database refused a decision record (SQLSTATE ${code}): ${(err as Error).message.slice(0, 200)}`, 'UnstorableDecision');
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
  await db
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
    .execute();
}
