import * as z from 'zod';

/**
 * The KPI table (issue 11 item 4), computed from recorded facts by src/kpi/kpis.ts. One zod schema per
 * type: the CLI's `--json`, the console and the metrics all read this shape (public API, README "KPIs").
 */
export const KPI_IDS = [
  'lineageCompleteness',
  'certifiedArtifactRate',
  'signedArtifactCoverage',
  'auditLogCompleteness',
  'approvalSlaAdherence',
  'rollbackTime',
  'inferenceP95',
  'policyViolations',
] as const;
export const kpiIdSchema = z.enum(KPI_IDS);
export type KpiId = z.infer<typeof kpiIdSchema>;

export const kpiGoalSchema = z.object({
  /** value must be >= (at least) or <= (at most) the goal. */
  op: z.enum(['>=', '<=']),
  value: z.number(),
  /** Where the goal comes from (a policy pack field, or the factory's invariant). */
  source: z.string(),
});
export type KpiGoal = z.infer<typeof kpiGoalSchema>;

export const kpiSchema = z.object({
  id: kpiIdSchema,
  title: z.string(),
  /** null when nothing in the window to measure (no population): never an estimate. */
  value: z.number().nullable(),
  unit: z.enum(['ratio', 'ms', 'count']),
  numerator: z.number().int().nonnegative().nullable(),
  denominator: z.number().int().nonnegative().nullable(),
  goal: kpiGoalSchema.nullable(),
  /** Whether value meets the goal; null without a value or a goal. */
  met: z.boolean().nullable(),
  /** Breakdown (per criterion, per source, percentiles): figures or short strings. */
  detail: z.record(z.string(), z.union([z.number(), z.string(), z.null()])),
  /** Why value is null or what was not checked, when it is so. */
  note: z.string().optional(),
});
export type Kpi = z.infer<typeof kpiSchema>;

export const kpiReportSchema = z.object({
  asOf: z.string(),
  /** Start of the window the windowed KPIs count over (ISO); state KPIs (in production now) ignore it. */
  since: z.string(),
  policyDigest: z.string(),
  kpis: z.object(Object.fromEntries(KPI_IDS.map((id) => [id, kpiSchema])) as Record<KpiId, typeof kpiSchema>),
});
export type KpiReport = z.infer<typeof kpiReportSchema>;
