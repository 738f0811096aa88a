import { ApplicationFailure } from '@temporalio/activity';
import { type CheckpointWrite, writeAuditCheckpoint as writeCheckpoint } from '../src/audit/checkpoint.ts';
import { type FactoryKey, SigningKeyError, loadFactoryKey } from '../src/signing/factory-key.ts';
import { auditChainName } from '../src/db/connect.ts';
import { bucket } from '../src/storage/s3.ts';
import type { CheckpointSummary } from '../src/domain/checkpoint.ts';
import { activityDeps } from './deps.ts';

let key: FactoryKey | undefined;

/**
 * Writes a signed checkpoint of the audit chain's head to the evidence bucket (COMPLIANCE lock),
 * unless the head has not moved. Called at the end of every lifecycle, by the `audit-checkpoint`
 * schedule, and by any workflow that wants its last event anchored at once (e.g. a history export).
 * Idempotent. No key is a configuration error: non-retryable, named.
 */
export async function writeAuditCheckpoint(input: { reason: string }): Promise<CheckpointSummary> {
  const deps = activityDeps();
  try {
    key ??= loadFactoryKey(deps.env);
  } catch (err) {
    if (err instanceof SigningKeyError) throw ApplicationFailure.nonRetryable(err.message, 'SigningKeyMissing');
    throw err;
  }
  const res: CheckpointWrite = await writeCheckpoint(
    { db: deps.db, s3: deps.s3, bucket: bucket(deps.env, 'evidence'), chain: auditChainName(deps.env), key },
    String(input?.reason ?? 'unspecified'),
  );
  if (res.written) {
    deps.log.info({ seq: res.checkpoint.seq, uri: res.uri, millis: res.millis }, 'audit checkpoint written');
    return { written: true, seq: res.checkpoint.seq, eventCount: res.checkpoint.eventCount, uri: res.uri, millis: res.millis };
  }
  if (res.why === 'refused') deps.log.error({ reason: res.reason }, 'audit checkpoint refused: the chain is behind its newest checkpoint');
  return { written: false, why: res.why, ...(res.checkpoint ? { seq: res.checkpoint.seq, eventCount: res.checkpoint.eventCount } : {}), millis: res.millis };
}
