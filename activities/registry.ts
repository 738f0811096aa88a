import { sql } from 'kysely';
import { ApplicationFailure } from '@temporalio/activity';
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

export interface DecisionRecord {
  id: string;
  modelVersionId: number;
  workflowId: string;
  decision: 'approve' | 'reject';
  approver: string;
  role: string;
  meaning: string;
  modelDigest: string;
  comment?: string;
  accepted: boolean;
  refusalReason?: string;
  policyDigest: string;
  decidedAt: string;
}

/** Keeps every decision, accepted or refused, with its reason. The id makes a retry a no-op. */
export async function recordDecision(r: DecisionRecord): Promise<void> {
  const { db } = activityDeps();
  await db
    .insertInto('approvals')
    .values({
      id: r.id,
      model_version_id: r.modelVersionId,
      workflow_id: r.workflowId,
      decision: r.decision,
      approver: r.approver,
      role: r.role,
      meaning: r.meaning,
      model_digest: r.modelDigest,
      comment: r.comment ?? null,
      accepted: r.accepted,
      refusal_reason: r.refusalReason ?? null,
      policy_digest: r.policyDigest,
      decided_at: new Date(r.decidedAt),
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
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
