import fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/activity';
import { appendAuditEvent } from '../src/audit/append.ts';
import { auditChainName } from '../src/db/connect.ts';
import { EVIDENCE_EXPORTED, type EvidenceExportInput, type EvidenceExportSummary, evidenceExportInputSchema } from '../src/domain/evidence.ts';
import { EvidenceUnavailable, buildEvidencePack } from '../src/evidence/build.ts';
import { PolicyPackError, parsePolicyPack, policyPackPath, retainUntilInForce } from '../src/policy/pack.ts';
import { type FactoryKey, SigningKeyError, loadFactoryKey } from '../src/signing/factory-key.ts';
import { putOnce } from '../src/storage/objects.ts';
import { bucket } from '../src/storage/s3.ts';
import { activityDeps } from './deps.ts';

let key: FactoryKey | undefined;

/** Where a pack is kept: one object per export, under the version it is for. */
export function evidencePackKey(model: string, version: number, exportWorkflowId: string, runId: string): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._@=-]/g, '_').slice(0, 200);
  return `evidence-packs/${safe(model)}/${version}/${safe(exportWorkflowId.split('/').at(-1) ?? exportWorkflowId)}-${safe(runId)}.zip`;
}

/**
 * Builds a version's evidence pack (src/evidence/build.ts), stores it in the evidence bucket under
 * Object Lock (the pack's `packs` retention) and appends `evidence.exported` (who, which version, which
 * case, the pack's digest) to the audit chain. Idempotent: the archive's bytes are fixed by the records
 * and the export's time, putOnce adds no second version, and the event's id derives from the export's
 * workflow and run ids. Poison input and a version that does not exist are final.
 */
export async function exportEvidencePack(
  raw: EvidenceExportInput & { exportWorkflowId: string; exportRunId: string; exportedAt: string },
): Promise<EvidenceExportSummary> {
  const parsed = evidenceExportInputSchema.safeParse({ model: raw?.model, version: raw?.version, case: raw?.case ?? null, actor: raw?.actor });
  if (!parsed.success) throw ApplicationFailure.nonRetryable(`invalid evidence export request: ${parsed.error.issues[0]?.message}`, 'InvalidEvidenceRequest');
  const input = parsed.data;
  const { db, s3, env, log } = activityDeps();
  let policy;
  try {
    key ??= loadFactoryKey(env);
    const file = policyPackPath();
    const text = fs.readFileSync(file, 'utf8');
    policy = { ...parsePolicyPack(text, file), text };
  } catch (err) {
    if (err instanceof SigningKeyError) throw ApplicationFailure.nonRetryable(err.message, 'SigningKeyMissing');
    if (err instanceof PolicyPackError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidPolicyPack');
    throw err;
  }
  const exportedAt = new Date(raw.exportedAt);
  let built;
  try {
    built = await buildEvidencePack(
      { db, s3, evidenceBucket: bucket(env, 'evidence'), chain: auditChainName(env), key, policy },
      { model: input.model, version: input.version, case: input.case, actor: input.actor, exportedAt, exportWorkflowId: raw.exportWorkflowId },
    );
  } catch (err) {
    if (err instanceof EvidenceUnavailable && !err.retryable) throw ApplicationFailure.nonRetryable(err.message, 'EvidenceUnavailable');
    throw err;
  }
  const stored = await putOnce(s3, bucket(env, 'evidence'), evidencePackKey(input.model, input.version, raw.exportWorkflowId, raw.exportRunId), built.zip, {
    contentType: 'application/zip',
    retainUntil: retainUntilInForce('packs', exportedAt),
  });
  const appended = await appendAuditEvent(db, {
    workflowId: raw.exportWorkflowId,
    runId: raw.exportRunId,
    step: EVIDENCE_EXPORTED,
    kind: EVIDENCE_EXPORTED,
    actor: input.actor,
    payload: {
      model: input.model,
      version: input.version,
      lifecycleWorkflowId: built.workflowId,
      case: input.case,
      uri: stored.uri,
      digest: stored.digest,
      bytes: built.zip.length,
      files: built.manifest.files.length,
      keyId: key.keyId,
      checkpointSeq: built.checkpointSeq,
    },
    occurredAt: exportedAt.toISOString(),
  });
  log.info({ model: input.model, version: input.version, uri: stored.uri, bytes: built.zip.length }, 'evidence pack exported');
  return {
    model: input.model,
    version: input.version,
    workflowId: built.workflowId,
    exportWorkflowId: raw.exportWorkflowId,
    case: input.case,
    actor: input.actor,
    uri: stored.uri,
    digest: stored.digest,
    bytes: built.zip.length,
    files: built.manifest.files.length,
    keyId: key.keyId,
    checkpointSeq: built.checkpointSeq,
    auditEventId: appended.eventId,
    exportedAt: exportedAt.toISOString(),
  };
}
