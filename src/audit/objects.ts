import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Kysely } from 'kysely';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Database } from '../db/schema.ts';
import { isMissingObject, parseS3Uri } from '../serving/artifact.ts';
import { DigestCounter } from '../storage/stream.ts';

/**
 * The objects the registry vouches for: each dataset version's raw file, certified data and
 * manifest, and each model version's artifact, with the sha256 recorded for it. Evidence is checked,
 * not assumed: `audit verify --objects` hashes every one, `trace` asks whether its own exist.
 */
export interface ObjectRef {
  table: 'dataset_versions' | 'model_versions';
  /** The row: a dataset version's manifest digest, a model version's name@version. */
  id: string;
  role: 'raw' | 'certified' | 'manifest' | 'artifact';
  uri: string;
  expected: string;
}

export type ObjectState = 'ok' | 'missing' | 'different' | 'unreadable';

export interface ObjectCheck extends ObjectRef {
  state: ObjectState;
  /** The digest found, when it differs. */
  actual?: string;
  reason?: string;
}

/** The certified file's digest is its key's second-to-last segment (`<dataset>/<hex>/data.csv`), as the trainer checks it. */
export function certifiedDigest(uri: string): string {
  const seg = parseS3Uri(uri)?.key.split('/').at(-2) ?? '';
  return /^[0-9a-f]{64}$/.test(seg) ? `sha256:${seg}` : 'sha256:(not named by its key)';
}

export function datasetObjects(d: { manifest_digest: string; raw_uri: string; raw_sha256: string; certified_uri: string; manifest_uri: string }): ObjectRef[] {
  const base = { table: 'dataset_versions' as const, id: d.manifest_digest };
  return [
    { ...base, role: 'raw', uri: d.raw_uri, expected: d.raw_sha256 },
    { ...base, role: 'certified', uri: d.certified_uri, expected: certifiedDigest(d.certified_uri) },
    { ...base, role: 'manifest', uri: d.manifest_uri, expected: d.manifest_digest },
  ];
}

export function modelObjects(m: { model_name: string; version: number; artifact_uri: string; artifact_digest: string }): ObjectRef[] {
  return [{ table: 'model_versions', id: `${m.model_name}@${m.version}`, role: 'artifact', uri: m.artifact_uri, expected: m.artifact_digest }];
}

/** Every referenced object, each (uri, digest) once, in a stable order. */
export async function referencedObjects(db: Kysely<Database>): Promise<ObjectRef[]> {
  const [datasets, models] = await Promise.all([
    db.selectFrom('dataset_versions').select(['manifest_digest', 'raw_uri', 'raw_sha256', 'certified_uri', 'manifest_uri']).orderBy('created_at').execute(),
    db.selectFrom('model_versions').select(['model_name', 'version', 'artifact_uri', 'artifact_digest']).orderBy('id').execute(),
  ]);
  const seen = new Set<string>();
  return [...datasets.flatMap(datasetObjects), ...models.flatMap(modelObjects)].filter((r) => {
    const k = `${r.uri}\u0000${r.expected}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

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

/**
 * Existence only, for `trace` (one HeadObject, short deadline). The sha256 the writer put in the
 * object's metadata is compared when present: it catches a plain overwrite, though metadata is a
 * claim, not proof (`audit verify --objects` hashes the bytes).
 */
export async function headObject(s3: S3Client, ref: ObjectRef, timeoutMs = 1_000): Promise<ObjectCheck> {
  const loc = parseS3Uri(ref.uri);
  if (!loc) return { ...ref, state: 'missing', reason: 'not an s3:// URI' };
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }), { abortSignal: AbortSignal.timeout(timeoutMs) });
    const claimed = head.Metadata?.sha256;
    if (claimed === undefined) return { ...ref, state: 'different', reason: 'the object carries no sha256 of ours: overwritten by another writer' };
    return claimed === ref.expected ? { ...ref, state: 'ok' } : { ...ref, state: 'different', actual: claimed };
  } catch (err) {
    if (isMissingObject(err)) return { ...ref, state: 'missing' };
    return { ...ref, state: 'unreadable', reason: (err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message.slice(0, 200) };
  }
}

/** Runs `fn` over `items`, at most `limit` at once, keeping the order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}
