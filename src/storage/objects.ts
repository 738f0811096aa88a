import {
  GetObjectCommand,
  type HeadObjectCommandOutput,
  HeadObjectCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export async function getBytes(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

/**
 * Object Lock parameters of a put: COMPLIANCE mode until `retainUntil` (from evidenceRetainUntil in
 * src/policy/schema.ts: the policy pack's evidenceRetention), or nothing when no lock is asked for.
 */
export function lockParams(retainUntil: Date | undefined): { ObjectLockMode?: 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date } {
  return retainUntil ? { ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: retainUntil } : {};
}

/** A day of slack: a retried write does not re-lock an object locked moments ago. */
const RELOCK_SLACK_MS = 86_400_000;

/**
 * An object already there (a retried or repeated write of the same bytes) keeps its version; when it
 * was stored unlocked or locked for less than asked (written before the pack's retention applied),
 * its retention is extended, which COMPLIANCE mode allows (never shortened).
 */
export async function extendLock(s3: S3Client, bucket: string, key: string, head: HeadObjectCommandOutput, retainUntil: Date | undefined): Promise<void> {
  if (!retainUntil) return;
  const current = head.ObjectLockRetainUntilDate?.getTime() ?? 0;
  if (head.ObjectLockMode === 'COMPLIANCE' && current >= retainUntil.getTime() - RELOCK_SLACK_MS) return;
  await s3.send(
    new PutObjectRetentionCommand({
      Bucket: bucket,
      Key: key,
      VersionId: head.VersionId,
      Retention: { Mode: 'COMPLIANCE', RetainUntilDate: new Date(Math.max(current, retainUntil.getTime())) },
    }),
  );
}

/**
 * Content-addressed put: when the key already holds an object with the same digest nothing is
 * written, so a retried activity adds no second version. `retainUntil` locks the version (COMPLIANCE).
 */
export async function putOnce(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Uint8Array | string,
  opts: { contentType?: string; retainUntil?: Date } = {},
): Promise<{ uri: string; digest: string; versionId?: string }> {
  const digest = sha256Digest(body);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  if (head?.Metadata?.sha256 === digest) {
    await extendLock(s3, bucket, key, head, opts.retainUntil);
    return { uri: `s3://${bucket}/${key}`, digest, versionId: head.VersionId };
  }
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: opts.contentType,
      Metadata: { sha256: digest },
      ...lockParams(opts.retainUntil),
    }),
  );
  return { uri: `s3://${bucket}/${key}`, digest, versionId: put.VersionId };
}
