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

/** The columns a row's hash covers: everything but the sequence number (and the stored hash and text), chained to the previous hash. */
export type ChainFields = Omit<Selectable<AuditEventsTable>, 'seq' | 'hash' | 'canonical'>;

/** The fields a row's hash covers: everything but the sequence number, chained to the previous hash. */
export function hashOf(row: ChainFields): string {
  return sha256Hex(canonicalEvent(row));
}

/**
 * The canonical bytes a row's hash covers. The outer object's keys are fixed and already in
 * canonical order, so it is written directly (the payload goes through canonicalJson): the same
 * string canonicalJson gives for the whole object, at a fraction of the cost.
 */
export function canonicalEvent(row: ChainFields): string {
  const { event_id, workflow_id, run_id, step, kind, actor, occurred_at, prev_hash } = row;
  if (
    typeof actor !== 'string' ||
    typeof event_id !== 'string' ||
    typeof kind !== 'string' ||
    typeof occurred_at !== 'string' ||
    typeof prev_hash !== 'string' ||
    typeof run_id !== 'string' ||
    typeof step !== 'string' ||
    typeof workflow_id !== 'string' ||
    row.payload === undefined
  ) {
    return canonicalJson({
      eventId: event_id,
      workflowId: workflow_id,
      runId: run_id,
      step,
      kind,
      actor,
      payload: row.payload,
      occurredAt: occurred_at,
      prevHash: prev_hash,
    });
  }
  const q = JSON.stringify;
  return `{"actor":${q(actor)},"eventId":${q(event_id)},"kind":${q(kind)},"occurredAt":${q(occurred_at)},"payload":${canonicalJson(row.payload)},"prevHash":${q(prev_hash)},"runId":${q(run_id)},"step":${q(step)},"workflowId":${q(workflow_id)}}`;
}
