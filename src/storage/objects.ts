import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export async function getBytes(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

/**
 * Content-addressed put: when the key already holds an object with the same digest nothing is
 * written, so a retried activity adds no second version.
 */
export async function putOnce(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Uint8Array | string,
  opts: { contentType?: string; retainDays?: number } = {},
): Promise<{ uri: string; digest: string; versionId?: string }> {
  const digest = sha256Digest(body);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  if (head?.Metadata?.sha256 === digest) return { uri: `s3://${bucket}/${key}`, digest, versionId: head.VersionId };
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: opts.contentType,
      Metadata: { sha256: digest },
      ...(opts.retainDays ? { ObjectLockMode: 'COMPLIANCE' as const, ObjectLockRetainUntilDate: new Date(Date.now() + opts.retainDays * 86_400_000) } : {}),
    }),
  );
  return { uri: `s3://${bucket}/${key}`, digest, versionId: put.VersionId };
}
