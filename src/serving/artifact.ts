import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DigestCounter } from '../storage/stream.ts';

/**
 * The evidence a step needs is not where the registry says (no such key, or a delete marker on top).
 * Retrying does not bring it back: callers make it a non-retryable, recorded failure.
 */
export class EvidenceMissing extends Error {
  override name = 'EvidenceMissing';
  constructor(readonly uri: string) {
    super(`${uri} does not exist in object storage (deleted, or never written): the registry references it`);
  }
}

/** The object exists but its bytes are not the ones the registry recorded. */
export class EvidenceDiffers extends Error {
  override name = 'EvidenceDiffers';
  constructor(
    readonly uri: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${uri} is ${actual}, the registry holds ${expected}`);
  }
}

/** S3 says "no such object" (GetObject's NoSuchKey, HeadObject's bare 404, a delete marker). */
export function isMissingObject(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.Code === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

/**
 * Streams an object into `file`, hashing as it goes, and keeps the file only when its sha256 is
 * `expected`: memory stays at a few buffers whatever the model's size. Throws EvidenceMissing or
 * EvidenceDiffers (the file removed); any other error (unreachable store) is passed on as it is.
 */
export async function downloadVerified(
  s3: S3Client,
  loc: { bucket: string; key: string },
  expected: string,
  file: string,
  opts: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
): Promise<{ bytes: number; sha256: string }> {
  const uri = `s3://${loc.bucket}/${loc.key}`;
  try {
    let res;
    try {
      res = await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key }), { abortSignal: opts.signal });
    } catch (err) {
      if (isMissingObject(err)) throw new EvidenceMissing(uri);
      throw err;
    }
    const counter = new DigestCounter();
    counter.on('data', () => opts.onProgress?.(counter.bytes));
    await pipeline(res.Body as NodeJS.ReadableStream, counter, fs.createWriteStream(file), { signal: opts.signal });
    const sha256 = counter.digest();
    if (sha256 !== expected) throw new EvidenceDiffers(uri, expected, sha256);
    return { bytes: counter.bytes, sha256 };
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw err;
  }
}

export { parseS3Uri } from './s3-uri.ts';
