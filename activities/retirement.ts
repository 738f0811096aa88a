import { HeadObjectCommand, type HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/activity';
import { appendAuditEventsIn } from '../src/audit/append.ts';
import { datasetObjects, modelObjects, type ObjectRef } from '../src/audit/objects.ts';
import type { ModelState } from '../src/db/schema.ts';
import { MODEL_STATE_TRANSITIONS } from '../src/domain/model-state.ts';
import { RETIREMENT_REASON_MAX, type RetentionExtension } from '../src/domain/retirement.ts';
import { loadPolicyPack, policyPackPath } from '../src/policy/pack.ts';
import { type EvidenceKind, evidenceRetainUntil } from '../src/policy/schema.ts';
import { parseS3Uri } from '../src/serving/s3-uri.ts';
import { extendLock } from '../src/storage/objects.ts';
import { activityDeps } from './deps.ts';
import { refusedByGuardIsFinal } from './guard-refusal.ts';

/** The version a retirement names, as the registry has it now. */
export interface RetirementTarget {
  id: number;
  modelName: string;
  version: number;
  state: ModelState;
  riskTier: string;
  artifactDigest: string;
  developer: string;
  workflowId: string;
}

/** Reads the version to retire; an unknown one is a final refusal (`UnknownModelVersion`), never retried. */
export async function retirementTarget(input: { modelName: string; version: number }): Promise<RetirementTarget> {
  const { db } = activityDeps();
  const m = await db
    .selectFrom('model_versions')
    .select(['id', 'model_name', 'version', 'state', 'risk_tier', 'artifact_digest', 'developer', 'workflow_id'])
    .where('model_name', '=', input.modelName)
    .where('version', '=', input.version)
    .executeTakeFirst();
  if (!m) throw ApplicationFailure.nonRetryable(`no model version ${input.modelName}@${input.version} in the registry`, 'UnknownModelVersion');
  // Refused before anyone is asked to approve: an open legal hold freezes the model's finished versions.
  const hold = await db
    .selectFrom('legal_holds as h')
    .select('h.case_id')
    .where('h.scope_kind', '=', 'model')
    .where('h.scope_name', '=', m.model_name)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('legal_hold_releases as r').select('r.case_id').whereRef('r.case_id', '=', 'h.case_id'))))
    .executeTakeFirst();
  if (hold) {
    throw ApplicationFailure.nonRetryable(
      `${m.model_name}@${m.version} is under legal hold ${hold.case_id}: it cannot be retired until the hold is released (factory hold release)`,
      'RefusedByRegistryGuard',
    );
  }
  return {
    id: m.id,
    modelName: m.model_name,
    version: m.version,
    state: m.state,
    riskTier: m.risk_tier,
    artifactDigest: m.artifact_digest,
    developer: m.developer,
    workflowId: m.workflow_id,
  };
}

/** The retention kind of each evidence role (the pack's evidenceRetention keys). */
const KIND_OF: Record<ObjectRef['role'], EvidenceKind> = {
  raw: 'raw',
  certified: 'certified',
  manifest: 'certified',
  artifact: 'artifacts',
  provenance: 'provenance',
  history: 'histories',
};

/**
 * Retention runs from the retirement: every evidence object of the version (its artifact, signed
 * provenance, the dataset's raw file, certified data and manifest, and the exported histories of
 * its lifecycle, which hold its approvals) is locked until the retirement date plus the pack's
 * retention for its kind. COMPLIANCE mode can only be extended, so an object already locked longer
 * keeps its date. Idempotent.
 */
export async function extendRetentionFromRetirement(input: { modelVersionId: number; retiredAt: string }): Promise<RetentionExtension[]> {
  const { db, s3 } = activityDeps();
  const pack = loadPolicyPack(policyPackPath()).pack;
  const from = new Date(input.retiredAt);
  if (Number.isNaN(from.getTime())) throw ApplicationFailure.nonRetryable('retiredAt must be an ISO time', 'InvalidInput');
  const m = await db
    .selectFrom('model_versions as m')
    .innerJoin('dataset_versions as d', 'd.manifest_digest', 'm.dataset_manifest_digest')
    .select(['m.model_name', 'm.version', 'm.artifact_uri', 'm.artifact_digest', 'm.provenance_uri', 'm.provenance_digest', 'm.workflow_id'])
    .select(['d.manifest_digest', 'd.raw_uri', 'd.raw_sha256', 'd.certified_uri', 'd.manifest_uri'])
    .where('m.id', '=', input.modelVersionId)
    .executeTakeFirstOrThrow();
  const histories = await db
    .selectFrom('history_exports')
    .select(['workflow_id', 'run_id', 'uri', 'digest'])
    .where('workflow_id', '=', m.workflow_id)
    .execute();
  const refs: ObjectRef[] = [
    ...modelObjects(m),
    ...datasetObjects(m),
    ...histories.map((h): ObjectRef => ({ table: 'history_exports', id: `${h.workflow_id}/${h.run_id}`, role: 'history', uri: h.uri, expected: h.digest })),
  ];
  const out: RetentionExtension[] = [];
  for (const ref of refs) {
    const loc = parseS3Uri(ref.uri);
    const retainUntil = evidenceRetainUntil(pack, KIND_OF[ref.role], from);
    if (!loc) {
      out.push({ role: ref.role, uri: ref.uri, retainUntil: retainUntil.toISOString(), previous: null, outcome: 'missing' });
      continue;
    }
    let head: HeadObjectCommandOutput;
    try {
      head = await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }));
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status !== 404) throw err; // the store did not answer: retried
      out.push({ role: ref.role, uri: ref.uri, retainUntil: retainUntil.toISOString(), previous: null, outcome: 'missing' });
      continue;
    }
    const previous = head.ObjectLockRetainUntilDate ?? null;
    const longer = head.ObjectLockMode === 'COMPLIANCE' && previous !== null && previous.getTime() >= retainUntil.getTime();
    if (!longer) await extendLock(s3, loc.bucket, loc.key, head, retainUntil);
    out.push({
      role: ref.role,
      uri: ref.uri,
      retainUntil: (longer ? previous : retainUntil).toISOString(),
      previous: previous?.toISOString() ?? null,
      outcome: longer ? 'kept' : 'extended',
    });
  }
  return out;
}

export interface RecordRetirementInput {
  workflowId: string;
  runId: string;
  modelVersionId: number;
  reason: string;
  requestedBy: string;
  retiredAt: string;
  retention: RetentionExtension[];
  policyDigest: string;
  /** The accepted approvals (who, role, when): in the audit event's payload. */
  approvals: Array<{ approver: string; role: string; at: string }>;
}

/**
 * Retires a version in one transaction: the registry state `retired`, the model's gateway route
 * `retired` with the reason when it names this version (the gateway then answers 410 for the model),
 * the `retirements` row and the audit event `model.retired`. Idempotent: a retry finds the row.
 */
export async function recordRetirement(input: RecordRetirementInput): Promise<{ routeRetired: boolean; previousState: ModelState }> {
  const { db } = activityDeps();
  if (typeof input.reason !== 'string' || input.reason.length > RETIREMENT_REASON_MAX) {
    throw ApplicationFailure.nonRetryable(`reason must be a string of at most ${RETIREMENT_REASON_MAX} characters`, 'InvalidInput');
  }
  const id = `${input.workflowId}/${input.runId}/retirement`;
  // Under an open legal hold the version is frozen (migration 0016): refused for good, not retried.
  return refusedByGuardIsFinal(() =>
    db.transaction().execute(async (tx) => {
      const m = await tx
        .selectFrom('model_versions')
        .select(['state', 'model_name', 'version'])
        .where('id', '=', input.modelVersionId)
        .forUpdate()
        .executeTakeFirstOrThrow();
      if (m.state === 'retired') {
        const done = await tx
          .selectFrom('retirements')
          .select(['route_retired', 'previous_state', 'id'])
          .where('model_version_id', '=', input.modelVersionId)
          .executeTakeFirst();
        if (done?.id === id) return { routeRetired: done.route_retired, previousState: done.previous_state as ModelState };
        throw ApplicationFailure.nonRetryable(`${m.model_name}@${m.version} is already retired${done ? ` (by ${done.id})` : ''}`, 'AlreadyRetired');
      }
      if (!MODEL_STATE_TRANSITIONS[m.state].includes('retired')) {
        throw ApplicationFailure.nonRetryable(`${m.model_name}@${m.version} is ${m.state}: it cannot be retired`, 'IllegalTransition');
      }
      const at = new Date(input.retiredAt);
      await tx.updateTable('model_versions').set({ state: 'retired', updated_at: at }).where('id', '=', input.modelVersionId).execute();
      const route = await tx
        .updateTable('gateway_routes')
        .set({ state: 'retired', reason: `retired: ${input.reason}`.slice(0, 1_100), switched_at: at, switched_by: input.workflowId })
        .where('model_name', '=', m.model_name)
        .where('model_version_id', '=', input.modelVersionId)
        .executeTakeFirst();
      const routeRetired = Number(route.numUpdatedRows) > 0;
      await tx
        .insertInto('retirements')
        .values({
          id,
          model_version_id: input.modelVersionId,
          model_name: m.model_name,
          version: m.version,
          previous_state: m.state,
          reason: input.reason,
          requested_by: input.requestedBy,
          workflow_id: input.workflowId,
          run_id: input.runId,
          route_retired: routeRetired,
          retention: JSON.stringify(input.retention),
          policy_digest: input.policyDigest,
          retired_at: at,
        })
        .execute();
      // The registry rows first: the append switches the transaction to the audit writer's role.
      await appendAuditEventsIn(tx, [
        {
          workflowId: input.workflowId,
          runId: input.runId,
          step: 'model.retired',
          kind: 'model.retired',
          actor: input.requestedBy,
          payload: {
            modelVersionId: input.modelVersionId,
            modelName: m.model_name,
            version: m.version,
            from: m.state,
            reason: input.reason,
            routeRetired,
            approvals: input.approvals,
            retention: input.retention,
            policyDigest: input.policyDigest,
          },
          occurredAt: input.retiredAt,
        },
      ]);
      return { routeRetired, previousState: m.state };
    }),
  );
}
