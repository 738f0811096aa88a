import { GetObjectCommand } from '@aws-sdk/client-s3';
import { appendAuditEventsIn } from '../src/audit/append.ts';
import { HOME_SITE, type PromotedObject, type PromotionInput, type PromotionOutcome, siteKey } from '../src/domain/promotion.ts';
import { loadPolicyPack, policyPackPath } from '../src/policy/pack.ts';
import { evidenceRetainUntil } from '../src/policy/schema.ts';
import { verifyStoredProvenance } from '../src/provenance/verify.ts';
import { parseS3Uri } from '../src/serving/s3-uri.ts';
import { putOnce, sha256Digest } from '../src/storage/objects.ts';
import { activityDeps } from './deps.ts';

/** Artifacts are ONNX files of a few MB; anything past this is refused rather than read into memory. */
export const MAX_PROMOTED_ARTIFACT_BYTES = 512 * 1024 * 1024;
/** Versions a promotion may copy: released ones (never one still in its lifecycle, rejected or retired). */
const PROMOTABLE_STATES = ['approved', 'deployed', 'rolled-back'];

export type PromotionVerdict = { ok: true; outcome: PromotionOutcome } | { ok: false; type: string; reason: string; details: Record<string, unknown> };

/**
 * Promotes one version to another site: the pack must name the site and the purpose; the version's
 * signed provenance is re-verified by the deployment's own check (src/provenance/verify.ts), the
 * artifact's bytes must be the digest the registry and the provenance hold, and only then are both
 * copied (putOnce, locked as artifacts and provenance are at home) and the row and `artifact.promoted`
 * written in one transaction. A refusal is a verdict (the workflow records it and fails for good);
 * only a store or database that does not answer throws, and is retried.
 */
export async function promoteArtifact(input: PromotionInput & { workflowId: string; runId: string }): Promise<PromotionVerdict> {
  const { env, s3, db } = activityDeps();
  const { pack, digest: policyDigest } = loadPolicyPack(policyPackPath());
  const refuse = (type: string, reason: string, details: Record<string, unknown> = {}): PromotionVerdict => ({ ok: false, type, reason, details });
  const sites = pack.sites ?? [];
  const purposes = pack.transferPurposes ?? [];
  const site = sites.find((s) => s.name === input.toSite);
  if (!site) return refuse('UnknownSite', `the policy pack names no site ${input.toSite} (sites: ${sites.map((s) => s.name).join(', ') || 'none'})`);
  if (!purposes.includes(input.purpose)) {
    return refuse(
      'PurposeNotAllowed',
      `the purpose ${input.purpose} is not one the policy pack allows for transfers (transferPurposes: ${purposes.join(', ') || 'none'})`,
    );
  }
  const mv = await db
    .selectFrom('model_versions')
    .select([
      'id',
      'state',
      'artifact_uri',
      'artifact_digest',
      'dataset_manifest_digest',
      'commit_sha',
      'policy_digest',
      'image_digest',
      'provenance_uri',
      'provenance_digest',
      'provenance_key_id',
    ])
    .where('model_name', '=', input.modelName)
    .where('version', '=', input.version)
    .executeTakeFirst();
  if (!mv) return refuse('UnknownModelVersion', `no model version ${input.modelName}@${input.version} in the registry`);
  const details = { modelVersionId: mv.id, artifactDigest: mv.artifact_digest, provenanceDigest: mv.provenance_digest };
  if (!PROMOTABLE_STATES.includes(mv.state)) {
    return refuse(
      'NotPromotable',
      `${input.modelName}@${input.version} is ${mv.state}: only an approved, deployed or rolled-back version is promoted`,
      details,
    );
  }
  const verdict = await verifyStoredProvenance({ env, s3 }, mv);
  if (!verdict.ok) return refuse('ProvenanceMismatch', `provenance: ${verdict.reason}`, details);

  const artifactLoc = parseS3Uri(mv.artifact_uri);
  const provenanceLoc = parseS3Uri(verdict.uri);
  if (!artifactLoc || !provenanceLoc) return refuse('ProvenanceMismatch', `the artifact URI ${mv.artifact_uri.slice(0, 300)} is not an s3:// URI`, details);
  let artifact: Buffer;
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: artifactLoc.bucket, Key: artifactLoc.key, Range: `bytes=0-${MAX_PROMOTED_ARTIFACT_BYTES}` }));
    artifact = Buffer.from(await res.Body!.transformToByteArray());
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'NoSuchKey' || name === 'NotFound' || name === 'InvalidRange')
      return refuse('EvidenceMissing', `artifact ${mv.artifact_uri} is missing or empty`, details);
    throw err;
  }
  if (artifact.length > MAX_PROMOTED_ARTIFACT_BYTES)
    return refuse('TamperedArtifact', `artifact ${mv.artifact_uri} is larger than ${MAX_PROMOTED_ARTIFACT_BYTES} bytes`, details);
  const actual = sha256Digest(artifact);
  if (actual !== mv.artifact_digest) {
    return refuse('TamperedArtifact', `artifact ${mv.artifact_uri} is ${actual}, the registry and its signed provenance hold ${mv.artifact_digest}`, {
      ...details,
      actualDigest: actual,
    });
  }
  const envelope = await s3.send(new GetObjectCommand({ Bucket: provenanceLoc.bucket, Key: provenanceLoc.key }));
  const envelopeBytes = Buffer.from(await envelope.Body!.transformToByteArray());
  // Read twice: the envelope verified a moment ago must be the one copied.
  if (sha256Digest(envelopeBytes) !== verdict.digest) return refuse('ProvenanceMismatch', `provenance ${verdict.uri} changed while it was promoted`, details);

  const copiedArtifact = await putOnce(s3, site.bucket, siteKey(site.prefix, artifactLoc.key), artifact, {
    contentType: 'application/octet-stream',
    retainUntil: evidenceRetainUntil(pack, 'artifacts'),
  });
  const copiedProvenance = await putOnce(s3, site.bucket, siteKey(site.prefix, provenanceLoc.key), envelopeBytes, {
    contentType: 'application/json',
    retainUntil: evidenceRetainUntil(pack, 'provenance'),
  });
  const artifactCopy: PromotedObject = { from: mv.artifact_uri, to: copiedArtifact.uri, digest: copiedArtifact.digest, versionId: copiedArtifact.versionId };
  const provenanceCopy = {
    from: verdict.uri,
    to: copiedProvenance.uri,
    digest: copiedProvenance.digest,
    versionId: copiedProvenance.versionId,
    keyId: verdict.keyId,
  };
  // What was promoted, as the audit event records it and the command reports it.
  const promoted = {
    modelName: input.modelName,
    version: input.version,
    fromSite: HOME_SITE,
    toSite: site.name,
    purpose: input.purpose,
    artifact: artifactCopy,
    provenance: provenanceCopy,
  };
  const promotionId = `${input.workflowId}/${input.runId}`;
  const promotedAt = new Date().toISOString();
  await db.transaction().execute(async (tx) => {
    const inserted = await tx
      .insertInto('artifact_promotions')
      .values({
        id: promotionId,
        model_version_id: mv.id,
        model_name: input.modelName,
        version: input.version,
        from_site: HOME_SITE,
        to_site: site.name,
        purpose: input.purpose,
        requested_by: input.requestedBy,
        artifact_digest: mv.artifact_digest,
        artifact_from: artifactCopy.from,
        artifact_to: artifactCopy.to,
        provenance_digest: provenanceCopy.digest,
        provenance_from: provenanceCopy.from,
        provenance_to: provenanceCopy.to,
        provenance_key_id: verdict.keyId,
        workflow_id: input.workflowId,
        run_id: input.runId,
        policy_digest: policyDigest,
        promoted_at: promotedAt,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    // A retried activity whose first try committed: the row and its event are there already.
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return;
    await appendAuditEventsIn(tx, [
      {
        workflowId: input.workflowId,
        runId: input.runId,
        step: 'artifact.promoted',
        kind: 'artifact.promoted',
        actor: input.requestedBy,
        payload: { modelVersionId: mv.id, ...promoted, policyDigest },
        occurredAt: promotedAt,
      },
    ]);
  });
  const row = await db.selectFrom('artifact_promotions').select('promoted_at').where('id', '=', promotionId).executeTakeFirstOrThrow();
  return {
    ok: true,
    outcome: {
      outcome: 'promoted',
      promotionId,
      ...promoted,
      promotedAt: new Date(row.promoted_at).toISOString(),
    },
  };
}
