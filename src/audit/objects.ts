import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { parseS3Uri } from '../serving/s3-uri.ts';

/**
 * The objects the registry vouches for: each dataset version's raw file, certified data and
 * manifest, each model version's artifact and each exported history, with the sha256 recorded for it. Evidence is checked,
 * not assumed: `audit verify --objects` hashes every one (objects-check.ts), `trace` asks whether
 * its own exist (src/trace/live.ts). No S3 SDK in this module: `trace` imports it.
 */
export interface ObjectRef {
  table: 'dataset_versions' | 'model_versions' | 'history_exports';
  /** The row: a dataset version's manifest digest, a model version's name@version, an exported history's workflow id/run id. */
  id: string;
  role: 'raw' | 'certified' | 'manifest' | 'artifact' | 'provenance' | 'history';
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

export function modelObjects(m: {
  model_name: string;
  version: number;
  artifact_uri: string;
  artifact_digest: string;
  provenance_uri?: string | null;
  provenance_digest?: string | null;
}): ObjectRef[] {
  const id = `${m.model_name}@${m.version}`;
  return [
    { table: 'model_versions', id, role: 'artifact', uri: m.artifact_uri, expected: m.artifact_digest },
    // The signed provenance envelope (migration 0007), when the version has one.
    ...(m.provenance_uri && m.provenance_digest
      ? [{ table: 'model_versions' as const, id, role: 'provenance' as const, uri: m.provenance_uri, expected: m.provenance_digest }]
      : []),
  ];
}

/** Every referenced object, each (uri, digest) once, in a stable order. */
export async function referencedObjects(db: Kysely<Database>): Promise<ObjectRef[]> {
  const [datasets, models, histories] = await Promise.all([
    db.selectFrom('dataset_versions').select(['manifest_digest', 'raw_uri', 'raw_sha256', 'certified_uri', 'manifest_uri']).orderBy('created_at').execute(),
    db
      .selectFrom('model_versions')
      .select(['model_name', 'version', 'artifact_uri', 'artifact_digest', 'provenance_uri', 'provenance_digest'])
      .orderBy('id')
      .execute(),
    db.selectFrom('history_exports').select(['workflow_id', 'run_id', 'uri', 'digest']).orderBy('exported_at').execute(),
  ]);
  const exported = histories.map((h): ObjectRef => ({
    table: 'history_exports',
    id: `${h.workflow_id}/${h.run_id}`,
    role: 'history',
    uri: h.uri,
    expected: h.digest,
  }));
  const seen = new Set<string>();
  return [...datasets.flatMap(datasetObjects), ...models.flatMap(modelObjects), ...exported].filter((r) => {
    const k = `${r.uri}\u0000${r.expected}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
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
