import * as z from 'zod';
import type { PolicyPack } from '../policy/schema.ts';
import { riskTierSchema } from './risk-tier.ts';
import type { GateState } from './approval.ts';

export const digestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a digest like sha256:<64 hex>');
export const emailSchema = z.string().email();

/** Input of `modelLifecycle`: the one place its shape and validation are defined. */
export const lifecycleInputSchema = z.object({
  modelName: z.string().regex(/^[a-z][a-z0-9_-]{1,62}$/, 'lowercase letters, digits, - and _, starting with a letter'),
  /** The raw file as the control worker sees it (a path on its filesystem). */
  datasetPath: z.string().min(1),
  /** Declared schema of the raw file (JSON); defaults to schema.json beside the dataset. */
  schemaPath: z.string().min(1).optional(),
  commitSha: z.string().regex(/^[0-9a-f]{7,40}$/, 'a git commit SHA (hex)'),
  imageDigest: digestSchema,
  riskTier: riskTierSchema,
  requester: emailSchema,
  developer: emailSchema,
  /**
   * Why the data is used (a purpose id the dataset's governance allows, e.g. diagnosis-research). Rows
   * whose consent does not name it are excluded; required for a dataset that carries consent per row.
   */
  purpose: z
    .string()
    .regex(/^[a-z][a-z0-9-]{1,63}$/, 'a purpose id: lowercase letters, digits and -, 2 to 64 characters')
    .optional(),
  /** A signed manual override (JSON statement, its OpenSSH signature at `<path>.sig`) re-including consent exclusions. */
  overridePath: z.string().min(1).max(4096).optional(),
  training: z
    .object({ epochs: z.number().int().min(1).max(1_000_000).default(300), seed: z.number().int().min(0).default(7) })
    .default({ epochs: 300, seed: 7 }),
});
export type LifecycleInput = z.input<typeof lifecycleInputSchema>;
export type LifecycleParams = z.output<typeof lifecycleInputSchema>;

/**
 * One lifecycle per model and commit: a CI job retried with the same commit finds the running (or
 * finished) lifecycle instead of starting a second one.
 */
export function lifecycleWorkflowId(modelName: string, commitSha: string): string {
  return `lifecycle-${modelName}-${commitSha}`;
}

export const LIFECYCLE_STAGES = ['ingest', 'train', 'evaluate', 'register', 'approval', 'deploy', 'deployed', 'rejected', 'failed', 'cancelled'] as const;
export type LifecycleStage = (typeof LIFECYCLE_STAGES)[number];

export type LifecycleOutcome =
  | { outcome: 'deployed'; modelName: string; version: number; artifactDigest: string; tritonModel: string; endpoint: string }
  | { outcome: 'rejected'; modelName: string; version?: number; reason: string; failing?: Record<string, { value: number; threshold: number }> };

/**
 * What a lifecycle hands to its next run when the approval gate continues as new: the candidate as
 * registered (and the policy pack it is judged by) and the gate's state. Accepted only from the
 * lifecycle's own previous run.
 */
export interface LifecycleCheckpoint {
  candidate: {
    policy: { pack: PolicyPack; digest: string };
    modelVersion: { id: number; version: number };
    artifact: { key: string; digest: string };
    certifiedKey: string;
    deadlineMs: number;
    /** The version's signed provenance (URI, envelope sha256), when the lifecycle signed one: the deployment verifies it. */
    provenance?: { uri: string; digest: string };
  };
  gate?: GateState;
  continuedRuns?: number;
}
