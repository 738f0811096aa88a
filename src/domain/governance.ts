import * as z from 'zod';

/** No C0/C1 controls, DEL or lone surrogates in text a person typed (reasons, names). */
const SAFE_TEXT = /^[^\u0000-\u001f\u007f-\u009f\ud800-\udfff]*$/;
const reason = z.string().min(1).max(1000).regex(SAFE_TEXT, 'no control characters');
const principal = z.string().email().max(320);
const recordName = z.string().regex(/^[\w.-]{1,128}$/, 'letters, digits, ., _ and - (at most 128)');

/** A legal case id (a docket or matter number): stable, printable, at most 128 characters. */
export const caseIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/, 'letters, digits and _ . : / - (at most 128), starting with a letter or digit');

/** The roles that may place or release a legal hold (a principal of the policy pack holding one of them). */
export const HOLD_ROLES = ['compliance', 'legal'] as const;

export const holdScopeSchema = z.union([z.object({ model: recordName }).strict(), z.object({ dataset: recordName }).strict()]);
export type HoldScope = z.infer<typeof holdScopeSchema>;

/** Input of the `legalHold` workflow: place a case's hold on a model's or dataset's records, or release it. */
export const legalHoldInputSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('place'), caseId: caseIdSchema, scope: holdScopeSchema, by: principal, reason }).strict(),
  z.object({ action: z.literal('release'), caseId: caseIdSchema, by: principal, reason }).strict(),
]);
export type LegalHoldInput = z.infer<typeof legalHoldInputSchema>;

export interface LegalHoldResult {
  caseId: string;
  action: 'place' | 'release';
  by: string;
  scope: HoldScope;
  /** Object versions the hold was set on (place) or lifted from (release). */
  objects: number;
  /** Object versions kept under legal hold at release because another open case holds them too. */
  stillHeld?: number;
  /** The case was already placed or released with the same inputs: nothing new was written. */
  existing: boolean;
}

/** The workflow id of a hold action: one place and one release per case. */
export function legalHoldWorkflowId(caseId: string, action: 'place' | 'release', taskQueuePrefix = ''): string {
  return `${taskQueuePrefix}legal-hold/${caseId}/${action}`;
}

/** Input of the `retentionSweep` workflow: report what is due, or also delete what policy allows. */
export const retentionSweepInputSchema = z
  .object({
    mode: z.enum(['report', 'delete']),
    /** Only objects whose key starts with this (an operator's narrower sweep, a test's own objects). */
    keyPrefix: z.string().min(1).max(512).regex(SAFE_TEXT, 'no control characters').optional(),
  })
  .strict();
export type RetentionSweepInput = z.infer<typeof retentionSweepInputSchema>;

/** Counts for one record type and classification. */
export interface RetentionGroup {
  recordType: string;
  classification: string;
  objects: number;
  bytes: number;
  /** Past their retain-until, not held: what policy allows deleting. */
  due: number;
  /** Past their retain-until but under a legal hold: kept. */
  heldPastRetention: number;
  /** Under a legal hold (due or not). */
  held: number;
  deleted: number;
}

export interface RetentionReport {
  sweepId: string;
  mode: 'report' | 'delete';
  at: string;
  keyPrefix?: string;
  scanned: number;
  /** The scan stopped at its cap: a later sweep goes on (deleted objects no longer count). */
  truncated: boolean;
  groups: RetentionGroup[];
  deleted: number;
  /** Tombstones written for the versions deleted: `retention_tombstones` rows. */
  tombstones: number;
}
