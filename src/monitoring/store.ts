import type { S3Client } from '@aws-sdk/client-s3';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { getBytes, sha256Digest } from '../storage/objects.ts';
import { type DistributionRef, type TrainingDistribution, distributionRefSchema, trainingDistributionSchema } from './distribution.ts';

/** Largest distribution object read (1024 features × 100 edges fits many times over). */
const MAX_DISTRIBUTION_BYTES = 4 * 1024 * 1024;

export class DistributionUnreadable extends Error {
  override name = 'DistributionUnreadable';
}

/**
 * A version's training distribution, read from its evidence object and checked against the digest
 * its environment record holds (a changed object is refused); undefined when the version has none
 * (trained before distributions were recorded).
 */
export async function loadDistribution(
  db: Kysely<Database>,
  s3: S3Client,
  modelVersionId: number,
): Promise<{ ref: DistributionRef; distribution: TrainingDistribution } | undefined> {
  const row = await db.selectFrom('model_versions').select('environment').where('id', '=', modelVersionId).executeTakeFirst();
  const raw = (row?.environment as Record<string, unknown> | undefined)?.trainingDistribution;
  if (raw === undefined) return undefined;
  const ref = distributionRefSchema.safeParse(raw);
  if (!ref.success) throw new DistributionUnreadable(`version ${modelVersionId}: its trainingDistribution record is malformed`);
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(ref.data.uri)!;
  const bytes = await getBytes(s3, m[1]!, m[2]!);
  if (bytes.length > MAX_DISTRIBUTION_BYTES) throw new DistributionUnreadable(`${ref.data.uri} is larger than ${MAX_DISTRIBUTION_BYTES} bytes`);
  if (sha256Digest(bytes) !== ref.data.digest) throw new DistributionUnreadable(`${ref.data.uri} does not match its digest ${ref.data.digest}: refused`);
  const parsed = trainingDistributionSchema.safeParse(JSON.parse(bytes.toString('utf8')));
  if (!parsed.success) throw new DistributionUnreadable(`${ref.data.uri} is not a training distribution: ${parsed.error.issues[0]?.message}`);
  return { ref: ref.data, distribution: parsed.data };
}

/**
 * The gateway's per-version feature edges, cached: a version's distribution never changes (its object
 * is locked and digested), so it is read once; a failed read is retried after `retryMs`, and the
 * requests meanwhile are served and logged without bins.
 */
export class DistributionCache {
  private readonly cache = new Map<number, { at: number; value: Promise<number[][] | undefined> }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly s3: S3Client,
    private readonly onError: (modelVersionId: number, err: Error) => void,
    private readonly retryMs = 60_000,
  ) {}

  featureEdges(modelVersionId: number): Promise<number[][] | undefined> {
    const hit = this.cache.get(modelVersionId);
    if (hit && (hit.at === 0 || Date.now() - hit.at < this.retryMs)) return hit.value;
    const entry = { at: 0, value: Promise.resolve<number[][] | undefined>(undefined) };
    entry.value = loadDistribution(this.db, this.s3, modelVersionId).then(
      (d) => d?.distribution.features.map((f) => f.edges),
      (err: Error) => {
        entry.at = Date.now(); // failures expire, successes do not
        this.onError(modelVersionId, err);
        return undefined;
      },
    );
    if (this.cache.size > 1_000) this.cache.clear();
    this.cache.set(modelVersionId, entry);
    return entry.value;
  }
}
