import {
  CreateBucketCommand,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { Env } from '../config/env.ts';

// Our supported runtime is Node 20 (the machines' own); the SDK's notice about a future Node 22
// floor would otherwise print on every command.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * The logical buckets of the factory; each is versioned with Object Lock enabled. `landing` is where
 * producers drop raw files that a lifecycle names as s3://<prefix>landing/<key> (an input lane).
 * `requests` holds the gateway's request payloads: in production only the payload-reader role may
 * read it (a bucket policy), and `factory request payload` records each read with its purpose first.
 */
export const BUCKETS = ['quarantine', 'certified', 'artifacts', 'evidence', 'landing', 'requests'] as const;
export type BucketName = (typeof BUCKETS)[number];

export function bucket(env: Env, name: BucketName): string {
  return `${env.S3_BUCKET_PREFIX}${name}`;
}

export function createS3(env: Env): S3Client {
  return new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    maxAttempts: 5,
  });
}

/** Default retention for evidence: compliance mode, which nobody (root included) can shorten or lift. */
export const EVIDENCE_RETENTION_DAYS = 30;

/** Creates the buckets with versioning and Object Lock; running it again changes nothing. */
export async function ensureBuckets(s3: S3Client, env: Env): Promise<void> {
  for (const name of BUCKETS) {
    const Bucket = bucket(env, name);
    const exists = await s3.send(new HeadBucketCommand({ Bucket })).then(
      () => true,
      () => false,
    );
    if (!exists) await s3.send(new CreateBucketCommand({ Bucket, ObjectLockEnabledForBucket: true }));
    // Only when needed: every write to the dev S3 server is journaled, and `dev up` runs this each time.
    const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket }));
    if (versioning.Status !== 'Enabled') await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    // The gateway's request payloads (src/gateway/) are kept like evidence: nobody shortens or lifts their retention.
    if (name === 'evidence' || name === 'requests') {
      const current = await s3.send(new GetObjectLockConfigurationCommand({ Bucket })).catch(() => undefined);
      if (!current?.ObjectLockConfiguration?.Rule) {
        await s3.send(
          new PutObjectLockConfigurationCommand({
            Bucket,
            ObjectLockConfiguration: {
              ObjectLockEnabled: 'Enabled',
              Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: EVIDENCE_RETENTION_DAYS } },
            },
          }),
        );
      }
    }
  }
}
