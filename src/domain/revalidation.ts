import * as z from 'zod';
import type { PolicyPack } from '../policy/schema.ts';
import type { GateState } from './approval.ts';
import { lifecycleInputSchema } from './lifecycle.ts';

/** Workflow type names (stable API, README). */
export const REVALIDATION_SWEEP_WORKFLOW = 'revalidationSweep';
export const REVALIDATION_REVIEW_WORKFLOW = 'revalidationReview';

/** The roles a revalidation waits for when the tier names none (`revalidatorRoles`): the pack's validators. */
export const DEFAULT_REVALIDATOR_ROLES = ['validator'];

/** Reviews a sweep opens at most per run: a backlog is worked through by the next runs (bounded history). */
export const SWEEP_MAX_REVIEWS = 200;

/** Input of `revalidationSweep`: every model, or one (`factory revalidation run --model`). */
export const revalidationSweepInputSchema = z.strictObject({
  modelName: lifecycleInputSchema.shape.modelName.optional(),
});
export type RevalidationSweepInput = z.infer<typeof revalidationSweepInputSchema>;

const isoInstant = z.iso.datetime({ offset: false });

/** Input of `revalidationReview` (stable API): the version and the due date the sweep found. */
export const revalidationReviewInputSchema = z.strictObject({
  modelName: lifecycleInputSchema.shape.modelName,
  version: z.number().int().min(1).max(999_999_999),
  dueAt: isoInstant,
  /** The validation that fell due (the inventory's last validation when the sweep ran). */
  lastValidatedAt: isoInstant,
  /** Who opened it: `revalidationSweep` (the schedule or `factory revalidation run`). */
  openedBy: z.string().min(1).max(200),
});
export type RevalidationReviewInput = z.infer<typeof revalidationReviewInputSchema>;

/** A version due for revalidation, as the sweep's activity lists it (the inventory's own figures). */
export interface DueRevalidation {
  modelName: string;
  version: number;
  modelVersionId: number;
  riskTier: string;
  lastValidatedAt: string;
  dueAt: string;
}

export interface RevalidationSweepReport {
  at: string;
  /** Versions the inventory found due (overdue at `at`), this model only when one was named. */
  due: number;
  /** Reviews this run started. */
  opened: string[];
  /** Due versions whose review for this due date was already open or done (never started twice). */
  existing: string[];
  /** More due versions than a run opens (SWEEP_MAX_REVIEWS): the next run goes on. */
  truncated: boolean;
}

export type RevalidationOutcome = 'revalidated' | 'failed' | 'timed-out';

export interface RevalidationReviewResult {
  outcome: RevalidationOutcome;
  modelName: string;
  version: number;
  dueAt: string;
  /** When the validation was renewed (revalidated only): the inventory's new last validation. */
  revalidatedAt?: string;
  reason?: string;
}

/**
 * One review per version and due date: a sweep run again (or twice at once) starts nothing new, and a
 * renewed validation has a new due date, hence a new review when it falls due again. The due date is
 * written without `:` and `.` (workflow ids appear in URLs and file names).
 */
export function revalidationWorkflowId(modelName: string, version: number, dueAt: string, taskQueuePrefix = ''): string {
  return `${taskQueuePrefix}revalidation-${modelName}-${version}-${dueAt.replace(/[:.]/g, '')}`;
}

/** The schedule's id (stable API): one per task-queue prefix. */
export function revalidationScheduleId(taskQueuePrefix = ''): string {
  return `${taskQueuePrefix}revalidation-sweep`;
}

export const REVALIDATION_STAGES = ['check', 'approval', 'revalidated', 'failed', 'timed-out'] as const;

/** What a review hands on when its gate continues as new. */
export interface RevalidationCheckpoint {
  gate: GateState;
  policy: { pack: PolicyPack; digest: string };
  deadlineMs: number;
  continuedRuns: number;
}

/** `--every` of `factory revalidation schedule`: minutes, hours or days, from 1 minute to 366 days. */
export function revalidationEveryOk(every: string): boolean {
  const m = /^([1-9][0-9]{0,5})(m|h|d)$/.exec(every);
  if (!m) return false;
  const minutes = Number(m[1]) * (m[2] === 'd' ? 1440 : m[2] === 'h' ? 60 : 1);
  return minutes >= 1 && minutes <= 366 * 1440;
}
