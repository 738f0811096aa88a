import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { KeyObject } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import * as z from 'zod';
import type { Database } from '../db/schema.ts';
import { signEnvelope, verifyEnvelope } from '../signing/dsse.ts';
import type { FactoryKey } from '../signing/factory-key.ts';
import { retainUntilInForce } from '../policy/pack.ts';
import { putOnce, sha256Digest } from '../storage/objects.ts';
import { mapLimit } from './objects.ts';

/**
 * Signed checkpoints of the audit chain's head, kept outside the database: a DSSE envelope per
 * checkpoint in the evidence bucket under Object Lock (COMPLIANCE). What the database says later is
 * checked against them (verify.ts): a tail cut off, or a chain recomputed from genesis by someone
 * who can write the database, no longer matches what the factory signed.
 */
export const CHECKPOINT_PAYLOAD_TYPE = 'application/vnd.ai-factory.audit-checkpoint+json';
/** Where one chain's checkpoints are kept in the evidence bucket (chain: auditChainName, the database's name). */
export function checkpointPrefix(chain: string): string {
  return `audit-checkpoints/${chain}/`;
}
/** The largest envelope read back: a checkpoint is ~600 bytes. */
const MAX_CHECKPOINT_BYTES = 64 * 1024;
/** Serialises checkpoint writers (the schedule and every lifecycle's end): one checkpoint per head. */
const CHECKPOINT_LOCK = 7_240_002;
/** Keys sort newest first: the key holds 10^19 − seq, zero-padded (seq is a bigint, < 2^63 < 10^19). */
const SEQ_SPACE = 10n ** 19n;

const seqText = z.string().regex(/^\d{1,19}$/);
export const auditCheckpointSchema = z
  .object({
    type: z.literal('ai-factory.audit-checkpoint/v1'),
    /** Which chain (the database's name): signed, so a checkpoint cannot be moved to another chain. */
    chain: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/),
    /** The chain head's seq (a bigint, as text). */
    seq: seqText,
    headHash: z.string().regex(/^[0-9a-f]{64}$/),
    eventCount: z.number().int().min(1),
    createdAt: z.iso.datetime(),
    keyId: z.string().max(128),
    /** The checkpoint before this one: its seq and the sha256 of its stored envelope (checkpoints chain too). */
    previous: z.object({ seq: seqText, digest: z.string().regex(/^sha256:[0-9a-f]{64}$/) }).nullable(),
    reason: z.string().max(200),
  })
  .strict();
export type AuditCheckpoint = z.infer<typeof auditCheckpointSchema>;

export function checkpointKey(chain: string, seq: bigint | string): string {
  const s = BigInt(seq);
  return `${checkpointPrefix(chain)}${(SEQ_SPACE - s).toString().padStart(20, '0')}-seq-${s}.dsse.json`;
}

export interface ChainHead {
  seq: string;
  hash: string;
  count: number;
}

/**
 * The newest row and the number of rows, in one statement (one snapshot). Ordered by the bigint, not
 * the text alias. Given the previous checkpoint, only the rows after it are counted (an index range,
 * not a scan of the whole trail): the count is the previous one's plus those. Rows removed before it
 * do not lower the count signed next; `audit verify` finds them (the chain breaks).
 */
export async function chainHead(db: Kysely<Database>, after?: { seq: string; eventCount: number }): Promise<ChainHead | undefined> {
  const counted = after ? sql`(SELECT count(*) FROM audit_events WHERE seq > ${after.seq})` : sql`(SELECT count(*) FROM audit_events)`;
  const r = await sql<{ seq: string; hash: string; n: string }>`
    SELECT seq::text AS seq, hash, ${counted}::text AS n FROM audit_events ORDER BY audit_events.seq DESC LIMIT 1`.execute(db);
  const row = r.rows[0];
  return row ? { seq: row.seq, hash: row.hash, count: Number(row.n) + (after?.eventCount ?? 0) } : undefined;
}

export type CheckpointWrite =
  | { written: true; checkpoint: AuditCheckpoint; uri: string; digest: string; versionId?: string; millis: number }
  | { written: false; why: 'empty' | 'unchanged'; checkpoint?: AuditCheckpoint; millis: number }
  /** The database is behind or differs from the newest signed checkpoint: never signed over. */
  | { written: false; why: 'refused'; reason: string; checkpoint: AuditCheckpoint; millis: number };

interface StoredCheckpoint {
  key: string;
  bytes: Buffer;
}

async function readStored(s3: S3Client, bucket: string, key: string): Promise<StoredCheckpoint> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if ((res.ContentLength ?? 0) > MAX_CHECKPOINT_BYTES) throw new Error(`${key}: larger than a checkpoint can be`);
  return { key, bytes: Buffer.from(await res.Body!.transformToByteArray()) };
}

function payloadOf(bytes: Buffer): AuditCheckpoint {
  const env = JSON.parse(bytes.toString('utf8')) as { payload: string };
  return auditCheckpointSchema.parse(JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')));
}

/**
 * Writes a signed checkpoint of the chain head, unless the head has not moved since the newest one.
 * Idempotent and safe to run concurrently (an advisory lock serialises writers; the key is the seq).
 * A head behind the newest checkpoint (rows cut off) or differing from it (rewritten) is refused,
 * never signed over: `audit verify` names it.
 */
export async function writeAuditCheckpoint(
  deps: { db: Kysely<Database>; s3: S3Client; bucket: string; chain: string; key: Pick<FactoryKey, 'privateKey' | 'keyId'> },
  reason: string,
  { retainUntil, now = () => new Date() }: { retainUntil?: Date; now?: () => Date } = {},
): Promise<CheckpointWrite> {
  const t0 = performance.now();
  const millis = () => Math.round((performance.now() - t0) * 10) / 10;
  return deps.db.transaction().execute(async (tx) => {
    await sql`SELECT pg_advisory_xact_lock(${CHECKPOINT_LOCK})`.execute(tx);
    const listed = await deps.s3.send(new ListObjectsV2Command({ Bucket: deps.bucket, Prefix: checkpointPrefix(deps.chain), MaxKeys: 1 }));
    const newestKey = listed.Contents?.[0]?.Key;
    const prevStored = newestKey ? await readStored(deps.s3, deps.bucket, newestKey) : undefined;
    const prev = prevStored ? payloadOf(prevStored.bytes) : undefined;
    const head = await chainHead(tx, prev);
    if (!head) return { written: false, why: 'empty', millis: millis() };
    if (prev) {
      const prevSeq = BigInt(prev.seq);
      const headSeq = BigInt(head.seq);
      if (headSeq === prevSeq && head.hash === prev.headHash) return { written: false, why: 'unchanged', checkpoint: prev, millis: millis() };
      if (headSeq < prevSeq || head.count < prev.eventCount || (headSeq === prevSeq && head.hash !== prev.headHash)) {
        return {
          written: false,
          why: 'refused',
          reason: `the chain head (seq ${head.seq}, ${head.count} events) is behind or differs from the newest signed checkpoint (seq ${prev.seq}, ${prev.eventCount} events): run \`factory audit verify\``,
          checkpoint: prev,
          millis: millis(),
        };
      }
    }
    const checkpoint: AuditCheckpoint = {
      type: 'ai-factory.audit-checkpoint/v1',
      chain: deps.chain,
      seq: head.seq,
      headHash: head.hash,
      eventCount: head.count,
      createdAt: now().toISOString(),
      keyId: deps.key.keyId,
      previous: prev && prevStored ? { seq: prev.seq, digest: sha256Digest(prevStored.bytes) } : null,
      reason: reason.slice(0, 200),
    };
    const envelope = signEnvelope(deps.key, CHECKPOINT_PAYLOAD_TYPE, JSON.stringify(checkpoint));
    const put = await putOnce(deps.s3, deps.bucket, checkpointKey(deps.chain, head.seq), `${JSON.stringify(envelope)}\n`, {
      contentType: 'application/json',
      // The policy pack's `checkpoints` retention (README, "Evidence retention"), unless the caller names one.
      retainUntil: retainUntil ?? retainUntilInForce('checkpoints', now()),
    });
    return { written: true, checkpoint, uri: put.uri, digest: put.digest, ...(put.versionId ? { versionId: put.versionId } : {}), millis: millis() };
  });
}

export type CheckpointProblem = { key: string; reason: string };

export interface ListedCheckpoints {
  /** Checkpoints whose signature verifies with a trusted key, oldest first. */
  valid: Array<AuditCheckpoint & { key: string; digest: string; signedBy: string }>;
  /** Objects under the prefix that are not a trusted, well-formed checkpoint, or break the checkpoints' own chain. */
  invalid: CheckpointProblem[];
}

/** Every checkpoint in the bucket, each signature verified with the trusted keys (rotated-out ones included). */
export async function listCheckpoints(
  s3: S3Client,
  bucket: string,
  chain: string,
  trusted: readonly KeyObject[],
  { concurrency = 8 } = {},
): Promise<ListedCheckpoints> {
  const keys: string[] = [];
  for (let token: string | undefined; ;) {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: checkpointPrefix(chain), ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    if (!page.IsTruncated) break;
    token = page.NextContinuationToken;
  }
  const valid: ListedCheckpoints['valid'] = [];
  const invalid: CheckpointProblem[] = [];
  await mapLimit(keys, concurrency, async (key) => {
    let stored: StoredCheckpoint;
    try {
      stored = await readStored(s3, bucket, key);
    } catch (err) {
      invalid.push({ key, reason: `unreadable: ${(err as Error).message.slice(0, 200)}` });
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(stored.bytes.toString('utf8'));
    } catch {
      invalid.push({ key, reason: 'not JSON' });
      return;
    }
    const verdict = verifyEnvelope(raw, trusted, CHECKPOINT_PAYLOAD_TYPE);
    if (!verdict.ok) {
      invalid.push({ key, reason: verdict.reason });
      return;
    }
    let cp: AuditCheckpoint;
    try {
      cp = auditCheckpointSchema.parse(JSON.parse(verdict.payload.toString('utf8')));
    } catch {
      invalid.push({ key, reason: 'signed, but not an audit checkpoint' });
      return;
    }
    if (checkpointKey(chain, cp.seq) !== key || cp.chain !== chain) {
      invalid.push({ key, reason: `signed for chain ${cp.chain} seq ${cp.seq}, stored under another key` });
      return;
    }
    valid.push({ ...cp, key, digest: sha256Digest(stored.bytes), signedBy: verdict.keyId });
  });
  valid.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
  // The checkpoints chain as the events do: each names the one before it by digest.
  const bySeq = new Map(valid.map((c) => [c.seq, c]));
  for (const c of valid) {
    if (c.previous && bySeq.get(c.previous.seq)?.digest !== c.previous.digest) {
      invalid.push({ key: c.key, reason: `its previous checkpoint (seq ${c.previous.seq}, ${c.previous.digest}) is not in the bucket as signed` });
    }
  }
  invalid.sort((a, b) => (a.key < b.key ? -1 : 1));
  return { valid, invalid };
}

/**
 * The newest checkpoint only (keys sort newest first: one short listing), its signature verified with
 * the trusted keys: what a status page needs without reading every checkpoint (listCheckpoints does
 * that for `audit verify`). Looks at the newest few keys, so one unreadable or foreign object does not
 * hide the checkpoints beneath it; `invalid` names those it passed over.
 */
export async function newestCheckpoint(
  s3: S3Client,
  bucket: string,
  chain: string,
  trusted: readonly KeyObject[],
  { look = 5 }: { look?: number } = {},
): Promise<{ newest?: ListedCheckpoints['valid'][number]; invalid: CheckpointProblem[] }> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: checkpointPrefix(chain), MaxKeys: look }));
  const invalid: CheckpointProblem[] = [];
  for (const o of listed.Contents ?? []) {
    if (!o.Key) continue;
    try {
      const stored = await readStored(s3, bucket, o.Key);
      const verdict = verifyEnvelope(JSON.parse(stored.bytes.toString('utf8')), trusted, CHECKPOINT_PAYLOAD_TYPE);
      if (!verdict.ok) {
        invalid.push({ key: o.Key, reason: verdict.reason });
        continue;
      }
      const cp = auditCheckpointSchema.parse(JSON.parse(verdict.payload.toString('utf8')));
      if (checkpointKey(chain, cp.seq) !== o.Key || cp.chain !== chain) {
        invalid.push({ key: o.Key, reason: `signed for chain ${cp.chain} seq ${cp.seq}, stored under another key` });
        continue;
      }
      return { newest: { ...cp, key: o.Key, digest: sha256Digest(stored.bytes), signedBy: verdict.keyId }, invalid };
    } catch (err) {
      invalid.push({ key: o.Key, reason: `unreadable or not a checkpoint: ${(err as Error).message.slice(0, 200)}` });
    }
  }
  return { invalid };
}
