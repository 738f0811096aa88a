import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { extendLock, lockParams } from './objects.ts';

/**
 * Streaming object I/O for files of any size (datasets): memory stays at a few buffers whatever the
 * object's size. objects.ts keeps the whole-body helpers for small objects (manifests, models).
 */

/** A pass-through that hashes (sha256) and counts what flows, refusing to pass more than `maxBytes`. */
export class DigestCounter extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  constructor(
    private readonly maxBytes = Number.POSITIVE_INFINITY,
    private readonly onTooLarge: () => Error = () => new Error(`more than ${maxBytes} bytes`),
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) return done(this.onTooLarge());
    this.hash.update(chunk);
    done(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

export async function objectStream(s3: S3Client, bucket: string, key: string): Promise<{ body: Readable; length?: number }> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return { body: res.Body as Readable, length: res.ContentLength };
}

/** Streams an object into a file; returns its size and digest. `onProgress` is called per chunk (heartbeats). */
export async function downloadToFile(
  s3: S3Client,
  bucket: string,
  key: string,
  file: string,
  onProgress: (bytes: number) => void = () => {},
): Promise<{ bytes: number; sha256: string }> {
  const { body } = await objectStream(s3, bucket, key);
  const counter = new DigestCounter();
  counter.on('data', () => onProgress(counter.bytes));
  await pipeline(body, counter, fs.createWriteStream(file));
  return { bytes: counter.bytes, sha256: counter.digest() };
}

/** Multipart parts: bounded memory per part (queueSize parts in flight), and no single huge request. */
const PART_BYTES = 16 * 1024 * 1024;

/**
 * Content-addressed put of a file, streamed as a multipart upload (one large PUT made the embedded
 * S3 server take minutes for 200 MB). When the key already holds an object with the same digest
 * nothing is written, so a retried activity adds no second version. The caller computed `digest`
 * over the same file. `onProgress` is called per part (heartbeats).
 */
export async function putFileOnce(
  s3: S3Client,
  bucket: string,
  key: string,
  file: string,
  digest: string,
  opts: { contentType?: string; onProgress?: (bytes: number) => void; retainUntil?: Date } = {},
): Promise<{ uri: string; digest: string; versionId?: string }> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  if (head?.Metadata?.sha256 === digest) {
    await extendLock(s3, bucket, key, head, opts.retainUntil);
    return { uri: `s3://${bucket}/${key}`, digest, versionId: head.VersionId };
  }
  const upload = new Upload({
    client: s3,
    queueSize: 2,
    partSize: PART_BYTES,
    leavePartsOnError: false,
    params: {
      Bucket: bucket,
      Key: key,
      Body: fs.createReadStream(file, { highWaterMark: 1024 * 1024 }),
      ContentType: opts.contentType,
      Metadata: { sha256: digest },
      ...lockParams(opts.retainUntil),
    },
  });
  upload.on('httpUploadProgress', (p) => opts.onProgress?.(p.loaded ?? 0));
  const done = await upload.done();
  return { uri: `s3://${bucket}/${key}`, digest, versionId: done.VersionId };
}
