import type { S3Client } from '@aws-sdk/client-s3';
import type { KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { type CheckpointProblem, checkpointPrefix, chainHead, listCheckpoints } from './checkpoint.ts';
import type { Finding } from './findings.ts';
import { type VerifyResult, verifyAuditChain } from './verify.ts';

export interface CheckpointsSummary {
  location: string;
  /** Checkpoints whose signature verified with a trusted key. */
  count: number;
  newest?: { seq: string; headHash: string; eventCount: number; createdAt: string; keyId: string; key: string };
  invalid: CheckpointProblem[];
  trustedKeys: string[];
}

export interface AnchoredVerify {
  chain: VerifyResult;
  checkpoints: CheckpointsSummary;
  findings: Finding[];
}

/**
 * The chain held against the signed checkpoints in the evidence bucket: an edited or deleted row
 * (chain-broken), rows cut off after the newest checkpoint (tail-truncated), a chain recomputed so
 * that it links again but no longer matches what was signed (chain-rewritten), and checkpoints that
 * are not what the factory signed (checkpoint-invalid) are each named.
 */
export async function verifyAnchoredChain(
  db: Kysely<Database>,
  s3: S3Client,
  bucket: string,
  chainName: string,
  trusted: ReadonlyArray<{ publicKey: KeyObject; keyId: string }>,
  { batch, full }: { batch?: number; full?: boolean } = {},
): Promise<AnchoredVerify> {
  const listed = await listCheckpoints(
    s3,
    bucket,
    chainName,
    trusted.map((k) => k.publicKey),
  );
  const chain = await verifyAuditChain(db, { anchors: listed.valid, full, ...(batch ? { batch } : {}) });
  const findings: Finding[] = [];
  if (!chain.ok && chain.firstBad) findings.push({ kind: 'chain-broken', seq: chain.firstBad.seq, message: chain.firstBad.reason });
  for (const m of chain.anchored?.rewritten ?? []) findings.push({ kind: 'chain-rewritten', seq: m.seq, message: m.reason });
  const newest = listed.valid.at(-1);
  if (newest) {
    // Where the chain broke, what lies past the break was not read: the head is asked for directly.
    const head = chain.ok ? (chain.lastSeq ? { seq: chain.lastSeq, count: chain.rows } : undefined) : await chainHead(db);
    if (!head || BigInt(head.seq) < BigInt(newest.seq)) {
      findings.push({
        kind: 'tail-truncated',
        seq: newest.seq,
        message: `the database ends at ${head ? `seq ${head.seq} (${head.count} events)` : 'no event at all'}, but the factory signed a head at seq ${newest.seq} over ${newest.eventCount} events (${newest.createdAt}): events were cut off the end`,
      });
    }
  }
  for (const p of listed.invalid) findings.push({ kind: 'checkpoint-invalid', key: p.key, message: p.reason });
  return {
    chain,
    checkpoints: {
      location: `s3://${bucket}/${checkpointPrefix(chainName)}`,
      count: listed.valid.length,
      ...(newest
        ? {
            newest: {
              seq: newest.seq,
              headHash: newest.headHash,
              eventCount: newest.eventCount,
              createdAt: newest.createdAt,
              keyId: newest.signedBy,
              key: newest.key,
            },
          }
        : {}),
      invalid: listed.invalid,
      trustedKeys: trusted.map((k) => k.keyId),
    },
    findings,
  };
}
