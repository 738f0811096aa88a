import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Env } from '../config/env.ts';
import { parseS3Uri } from '../serving/s3-uri.ts';
import { SigningKeyError } from '../signing/factory-key.ts';
import { loadTrustedKeys } from '../signing/trusted-keys.ts';
import { sha256Digest } from '../storage/objects.ts';
import { MAX_ENVELOPE_BYTES, checkProvenance } from './statement.ts';

/** A model version as the registry has it: what its provenance must agree with. */
export interface ProvenanceRow {
  artifact_digest: string;
  dataset_manifest_digest: string;
  commit_sha: string;
  policy_digest: string;
  image_digest: string;
  provenance_uri: string | null;
  provenance_digest: string | null;
}

export type StoredProvenanceVerdict = { ok: true; keyId: string; uri: string; digest: string } | { ok: false; reason: string; keyId?: string };

/**
 * Verifies a version's stored provenance before anything is served from it: the registry names it
 * (and names what the lifecycle signed, when the caller knows that), the envelope object's bytes
 * are the ones recorded, a trusted factory key signed it, and its subject, dataset manifest,
 * commit, policy and image digests are the registry's. A disagreement is a verdict with its
 * reason; only a store that does not answer throws (worth retrying).
 */
export async function verifyStoredProvenance(
  deps: { env: Env; s3: S3Client },
  row: ProvenanceRow,
  expected?: { uri: string; digest: string },
): Promise<StoredProvenanceVerdict> {
  if (expected && (row.provenance_uri !== expected.uri || row.provenance_digest !== expected.digest)) {
    return {
      ok: false,
      reason: `the registry names provenance ${row.provenance_uri ?? '(none)'} ${row.provenance_digest ?? ''}, the lifecycle signed ${expected.uri} ${expected.digest}`,
    };
  }
  if (!row.provenance_uri || !row.provenance_digest) return { ok: false, reason: 'the registry names no provenance for this version' };
  const loc = parseS3Uri(row.provenance_uri);
  if (!loc) return { ok: false, reason: `the provenance URI ${row.provenance_uri.slice(0, 300)} is not an s3:// URI` };
  let bytes: Buffer;
  try {
    const res = await deps.s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key, Range: `bytes=0-${MAX_ENVELOPE_BYTES}` }));
    bytes = Buffer.from(await res.Body!.transformToByteArray());
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'NoSuchKey' || name === 'NotFound') return { ok: false, reason: `the provenance ${row.provenance_uri} does not exist` };
    if (name === 'InvalidRange') return { ok: false, reason: `the provenance ${row.provenance_uri} is empty` };
    throw err;
  }
  if (bytes.length > MAX_ENVELOPE_BYTES) return { ok: false, reason: `the provenance ${row.provenance_uri} is larger than ${MAX_ENVELOPE_BYTES} bytes` };
  const actual = sha256Digest(bytes);
  if (actual !== row.provenance_digest) {
    return {
      ok: false,
      reason: `the provenance ${row.provenance_uri} is ${actual}, the registry holds ${row.provenance_digest} (replaced since it was signed)`,
    };
  }
  let trusted;
  try {
    trusted = loadTrustedKeys(deps.env).map((k) => k.publicKey);
  } catch (err) {
    if (err instanceof SigningKeyError) return { ok: false, reason: `cannot verify the provenance: ${err.message}` };
    throw err;
  }
  const verdict = checkProvenance(bytes, trusted, {
    artifactDigest: row.artifact_digest,
    datasetManifestDigest: row.dataset_manifest_digest,
    commitSha: row.commit_sha,
    policyDigest: row.policy_digest,
    imageDigest: row.image_digest,
  });
  return verdict.ok ? { ok: true, keyId: verdict.keyId, uri: row.provenance_uri, digest: actual } : verdict;
}
