import * as z from 'zod';

/** Temporal names of the deployment monitor: stable API (README, "Monitoring"). */
export const MONITOR_WORKFLOW = 'deploymentMonitor';
export const MONITOR_STATUS_QUERY = 'monitorStatus';
export const ACKNOWLEDGE_SIGNAL = 'acknowledge';

/** One monitor per served model: it follows the version the model's route serves (a rollback included). */
export function monitorWorkflowId(modelName: string): string {
  return `monitor-${modelName}`;
}

const modelName = z.string().regex(/^[a-z][a-z0-9_-]{1,62}$/, 'lowercase letters, digits, - and _, starting with a letter');
const noControl = (max: number) =>
  z
    .string()
    .min(3)
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, 'no control characters');

/** Input of `deploymentMonitor`. */
export const monitorInputSchema = z.object({
  modelName,
  /** Window length in milliseconds (from the tier's `monitoring.window`, or `factory monitor start --window`). */
  windowMs: z
    .number()
    .int()
    .min(1_000)
    .max(7 * 86_400_000),
  /** Windows per run before it continues as new (the history stays bounded). */
  windowsPerRun: z.number().int().min(1).max(500).default(100),
  startedBy: z.string().email(),
});
export type MonitorInput = z.input<typeof monitorInputSchema>;

/** The `acknowledge` signal's payload: who closes the open review, and why. */
export const acknowledgeSchema = z.strictObject({
  by: z.string().email().max(254),
  reason: noControl(1000),
});
export type Acknowledgement = z.infer<typeof acknowledgeSchema>;

export interface MonitorBreach {
  metric: string;
  feature?: string;
  value: number;
  threshold: number;
}

export interface MonitorReview {
  reviewId: string;
  openedAt: string;
  modelVersionId: number | null;
  version: number | null;
  windowId: string;
  breaches: MonitorBreach[];
  autoRollback: boolean;
  rollbackWorkflowId?: string;
  rollbackStarted?: boolean;
}

/** What a run hands to the next when it continues as new. */
export interface MonitorCarry {
  nextWindowStartMs: number;
  windowsDone: number;
  openReview?: MonitorReview;
}

/** The `monitorStatus` query's answer (also the workflow's current details). */
export interface MonitorStatus {
  modelName: string;
  windowMs: number;
  windowsDone: number;
  nextWindowEnd: string;
  lastWindow?: {
    windowId: string;
    start: string;
    end: string;
    version: number | null;
    requests: number;
    rows: number;
    breaches: MonitorBreach[];
  };
  openReview?: MonitorReview;
  /** Refused acknowledgements of this run (bounded). */
  refused: Array<{ at: string; reason: string }>;
}

/** What a window activity returns to the workflow. */
export interface WindowResult {
  windowId: string;
  modelVersionId: number | null;
  version: number | null;
  riskTier: string | null;
  routeState: string | null;
  requests: number;
  rows: number;
  breaches: MonitorBreach[];
  autoRollback: boolean;
}
