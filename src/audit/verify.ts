import type { S3Client } from '@aws-sdk/client-s3';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { GENESIS_HASH, hashOf } from './chain.ts';
import { type ObjectCheck, mapLimit, referencedObjects } from './objects.ts';

export interface VerifyResult {
  ok: boolean;
  rows: number;
  lastSeq?: string;
  headHash?: string;
  /** The first row that does not verify, and why. */
  firstBad?: { seq: string; eventId: string; reason: string };
}

/**
 * Recomputes the chain from the first row: each row's hash over its canonical content, and its link
 * to the row before. An edited row fails its own hash; a deleted row breaks the next row's link.
 * (Gaps in seq alone prove nothing: a rolled-back insert leaves one. The hash link does.)
 */
export async function verifyAuditChain(db: Kysely<Database>, batch = 5_000): Promise<VerifyResult> {
  let prevHash = GENESIS_HASH;
  let prevSeq = 0n;
  let rows = 0;
  let lastSeq: string | undefined;
  for (;;) {
    const page = await db.selectFrom('audit_events').selectAll().where('seq', '>', String(prevSeq)).orderBy('seq').limit(batch).execute();
    for (const r of page) {
      const seq = BigInt(r.seq);
      const bad = (reason: string): VerifyResult => ({
        ok: false,
        rows,
        lastSeq,
        headHash: prevHash,
        firstBad: { seq: String(r.seq), eventId: r.event_id, reason },
      });
      if (r.prev_hash !== prevHash) {
        return bad(`its prev_hash does not match the hash of the row before it (seq ${prevSeq}): a row before it was deleted, inserted or changed`);
      }
      if (hashOf(r) !== r.hash) return bad('its content does not match its hash: the row was edited');
      prevHash = r.hash;
      prevSeq = seq;
      lastSeq = String(r.seq);
      rows += 1;
    }
    if (page.length < batch) break;
  }
  return { ok: true, rows, lastSeq, headHash: prevHash };
}

// The registry check streams in its own module; re-exported here for the callers that import it from verify.ts.
export { type ProjectionMismatch, type ProjectionResult, verifyProjection } from './verify-projection.ts';

export interface ObjectsResult {
  /** false when an object is missing or differs (tampering or loss); unreadable ones are counted apart. */
  ok: boolean;
  checked: number;
  /** Every object that is not as recorded: missing, different, or unreadable (the store did not answer). */
  problems: ObjectCheck[];
  unreadable: number;
}

/**
 * Checks that every object the registry references (raw datasets, certified data, manifests,
 * artifacts) exists in object storage with its recorded sha256, hashing each by stream, four at once.
 */
export async function verifyObjects(db: Kysely<Database>, s3: S3Client, { concurrency = 4 }: { concurrency?: number } = {}): Promise<ObjectsResult> {
  // The S3 SDK only here: `trace` shares this module's chunk and must not load it.
  const { hashObject } = await import('./objects-check.ts');
  const refs = await referencedObjects(db);
  const checks = await mapLimit(refs, concurrency, (r) => hashObject(s3, r));
  const problems = checks.filter((c) => c.state !== 'ok');
  return {
    ok: !problems.some((p) => p.state === 'missing' || p.state === 'different'),
    checked: checks.length,
    problems,
    unreadable: problems.filter((p) => p.state === 'unreadable').length,
  };
}
