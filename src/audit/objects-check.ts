import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isMissingObject, parseS3Uri } from '../serving/artifact.ts';
import { DigestCounter } from '../storage/stream.ts';
import type { ObjectCheck, ObjectRef } from './objects.ts';

/** Hashes one object by stream (HeadObject, then GetObject through a hash): memory stays flat for a 1 GiB dataset. */
export async function hashObject(s3: S3Client, ref: ObjectRef, timeoutMs = 600_000): Promise<ObjectCheck> {
  const loc = parseS3Uri(ref.uri);
  if (!loc) return { ...ref, state: 'missing', reason: 'not an s3:// URI' };
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }), { abortSignal: signal });
    const res = await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key }), { abortSignal: signal });
    const counter = new DigestCounter();
    const sink = new Writable({ write: (_chunk, _enc, done) => done() });
    await pipeline(res.Body as NodeJS.ReadableStream, counter, sink, { signal });
    const actual = counter.digest();
    return actual === ref.expected ? { ...ref, state: 'ok' } : { ...ref, state: 'different', actual };
  } catch (err) {
    if (isMissingObject(err)) return { ...ref, state: 'missing' };
    return { ...ref, state: 'unreadable', reason: (err as Error).message.slice(0, 200) };
  }
}
