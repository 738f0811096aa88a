import * as z from 'zod';

/**
 * Rollback and rollback drills (issue 9, items 3 and 4). The workflow input is a CONTRACT: the
 * monitoring workflow starts `modelRollback` with it for an automatic rollback. Stable API (README).
 */
export const ROLLBACK_WORKFLOW = 'modelRollback';
export const DRILL_WORKFLOW = 'rollbackDrill';

/** No control characters (terminal escapes, NUL, forged lines, bidi controls) nor lone surrogates: the trail keeps this text. */
const noControls = (s: string) =>
  !/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(
    s,
  );

/** The lifecycle's model names (lifecycleInputSchema): a rollback can only name a model a lifecycle made. */
export const rollbackModelNameSchema = z.string().regex(/^[a-z][a-z0-9_-]{1,62}$/, 'lowercase letters, digits, - and _, starting with a letter');

export const ROLLBACK_TRIGGERS = ['manual', 'monitoring', 'drill'] as const;
export type RollbackTrigger = (typeof ROLLBACK_TRIGGERS)[number];

export const rollbackInputSchema = z
  .object({
    modelName: rollbackModelNameSchema,
    /** The version to serve again; default: the newest version below the live one that is deployed (served before, never rolled back). */
    toVersion: z.number().int().min(1).max(1_000_000_000).optional(),
    /** Why (kept in the rollbacks table and the audit trail). */
    reason: z.string().trim().min(3).max(1_000).refine(noControls, 'no control characters'),
    /** Who asks: a person (`--as`, default user@host) or the monitor workflow's id. */
    requestedBy: z.string().trim().min(1).max(320).refine(noControls, 'no control characters'),
    trigger: z.enum(ROLLBACK_TRIGGERS),
  })
  .strict();
export type RollbackInput = z.input<typeof rollbackInputSchema>;
export type RollbackParams = z.output<typeof rollbackInputSchema>;

/** `rollback-<model>-<unique>`: one workflow per rollback asked for; `unique` is the caller's (a time, a monitor window id). */
export function rollbackWorkflowId(modelName: string, unique: string): string {
  return `rollback-${modelName}-${unique.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100)}`;
}

export interface RollbackOutcome {
  modelName: string;
  fromVersion: number;
  toVersion: number;
  /** Command (the workflow's start) → first correct inference on toVersion, in milliseconds. */
  rtoMs: number;
  /** Where the first correct inference was seen: through the gateway (a service key), or Triton directly (no key configured). */
  verifiedVia: 'gateway' | 'triton';
  /** The rollbacks row (the workflow id). */
  rollbackId: string;
  artifactDigest: string;
  trigger: RollbackTrigger;
  requestedBy: string;
  reason: string;
  switchedAt: string;
  firstCorrectAt: string;
}

/** A version as the rollback plan names it. */
export interface PlannedVersion {
  id: number;
  version: number;
  state: string;
  artifactDigest: string;
  artifactKey: string;
  provenance?: { uri: string; digest: string };
  /** The smoke inference recorded at its last deployment: what a correct answer is. */
  smoke: { input: number[][]; output: number[][] };
}

export interface RollbackPlan {
  modelName: string;
  riskTier: string;
  from: PlannedVersion;
  to: PlannedVersion;
}

// ---- drills ------------------------------------------------------------------------------------

export const drillInputSchema = z
  .object({
    modelName: rollbackModelNameSchema,
    requestedBy: z.string().trim().min(1).max(320).refine(noControls, 'no control characters'),
    /** Why this drill runs (the schedule says "scheduled drill"). */
    reason: z.string().trim().min(3).max(1_000).refine(noControls, 'no control characters').default('rollback drill'),
  })
  .strict();
export type DrillInput = z.input<typeof drillInputSchema>;

/** The shadow deployment of a model: its own Triton model name and gateway route, never the live one. */
export function shadowModelName(modelName: string): string {
  return `${modelName}--shadow`;
}

export function drillWorkflowId(modelName: string, unique: string): string {
  return `drill-${modelName}-${unique.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100)}`;
}

export function drillScheduleId(modelName: string, taskQueuePrefix = ''): string {
  return `${taskQueuePrefix}drill-${modelName}`;
}

export type DrillVerdict = 'passed' | 'failed' | 'exceeded-rto';

export interface DrillOutcome {
  drillId: string;
  modelName: string;
  shadowModel: string;
  liveVersion?: number;
  previousVersion?: number;
  verdict: DrillVerdict;
  /** Rollback leg on the shadow route: command → first correct inference on the previous version. */
  rtoMs?: number;
  /** Roll-forward leg: back to the live version on the shadow route. */
  forwardMs?: number;
  /** The tier's rollbackRtoSeconds from the policy pack. */
  policyRtoSeconds?: number;
  reason?: string;
  evidenceUri?: string;
}

/** Model outputs equal to float32 precision (the model computes in FP32; JSON round-trips them): a "correct" answer. */
export function sameOutputs(a: number[][], b: number[][]): boolean {
  return (
    a.length === b.length && a.every((row, i) => row.length === b[i]!.length && row.every((x, j) => Math.abs(x - b[i]![j]!) <= 1e-5 * Math.max(1, Math.abs(x))))
  );
}
