import * as z from 'zod';
import type { PolicyPack } from '../policy/schema.ts';
import type { GateState } from './approval.ts';
import { emailSchema, lifecycleInputSchema } from './lifecycle.ts';

export const RETIREMENT_WORKFLOW = 'modelRetirement';
export const RETIREMENT_REASON_MAX = 1_000;

/** Text a person writes (a reason): bounded, no control characters (C0, C1, DEL) or lone surrogates. */
const humanText = (max: number) =>
  z
    .string()
    .trim()
    .min(3, 'at least 3 characters')
    .max(max, `at most ${max} characters`)
    .regex(/^[^\p{Cc}]*$/u, 'no control characters')
    .refine((s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s), 'no lone surrogates');

/** Input of `modelRetirement` (stable API). */
export const retirementInputSchema = z.strictObject({
  modelName: lifecycleInputSchema.shape.modelName,
  version: z.number().int().min(1).max(999_999_999),
  reason: humanText(RETIREMENT_REASON_MAX),
  /** Who asks for the retirement: recorded, and barred from approving it (like a lifecycle's requester). */
  requestedBy: emailSchema.max(320),
});
export type RetirementInput = z.infer<typeof retirementInputSchema>;

/** One retirement per model version: a retried `factory retire` finds the running (or finished) one. */
export function retirementWorkflowId(modelName: string, version: number): string {
  return `retire-${modelName}-${version}`;
}

/** `model@3` → name and version (a version is required: a retirement names exactly one). */
export function parseVersionRef(ref: string): { modelName: string; version: number } | undefined {
  const m = /^([a-z][a-z0-9_-]{1,62})@([1-9]\d{0,8})$/.exec(ref);
  return m ? { modelName: m[1]!, version: Number(m[2]) } : undefined;
}

export const RETIREMENT_STAGES = ['check', 'approval', 'retiring', 'retired', 'rejected'] as const;
export type RetirementStage = (typeof RETIREMENT_STAGES)[number];

export type RetirementOutcome =
  | {
      outcome: 'retired';
      modelName: string;
      version: number;
      retiredAt: string;
      /** Whether the model's gateway route named this version (now answers 410 for the model). */
      routeRetired: boolean;
      /** Whether Triton served the version and it was unloaded. */
      unloaded: boolean;
      retention: RetentionExtension[];
    }
  | { outcome: 'rejected'; modelName: string; version: number; reason: string };

/** What a retirement hands on when its gate continues as new. */
export interface RetirementCheckpoint {
  gate: GateState;
  /** The pack the gate opened with (a continued run judges by the same rules). */
  policy: { pack: PolicyPack; digest: string };
  deadlineMs: number;
  continuedRuns: number;
}

/** An evidence object whose Object Lock now runs from the retirement. */
export interface RetentionExtension {
  role: string;
  uri: string;
  /** The retain-until asked for: retirement date + the pack's retention for its kind. */
  retainUntil: string;
  /** The retain-until the object had before (null: unlocked, or the store did not say). */
  previous: string | null;
  /** extended; kept (already locked at least as long); missing (the store has no such object). */
  outcome: 'extended' | 'kept' | 'missing';
}
