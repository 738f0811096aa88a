import type { Selectable } from 'kysely';
import type { AuditEventsTable } from '../db/schema.ts';
import { canonicalJson, sha256Hex } from './canonical.ts';

/** What a workflow step says happened. The id of the event derives from workflow id, run id and step. */
export interface AuditEventInput {
  workflowId: string;
  runId: string;
  step: string;
  kind: string;
  actor: string;
  payload: Record<string, unknown>;
  /** UTC ISO time from the workflow's (replay-safe) clock. */
  occurredAt: string;
}

export const GENESIS_HASH = '0'.repeat(64);

export function auditEventId(e: Pick<AuditEventInput, 'workflowId' | 'runId' | 'step'>): string {
  return `${e.workflowId}/${e.runId}/${e.step}`;
}

/** The fields a row's hash covers: everything but the sequence number, chained to the previous hash. */
export function hashOf(row: Omit<Selectable<AuditEventsTable>, 'seq' | 'hash'>): string {
  return sha256Hex(
    canonicalJson({
      eventId: row.event_id,
      workflowId: row.workflow_id,
      runId: row.run_id,
      step: row.step,
      kind: row.kind,
      actor: row.actor,
      payload: row.payload,
      occurredAt: row.occurred_at,
      prevHash: row.prev_hash,
    }),
  );
}
