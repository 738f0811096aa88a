import * as z from 'zod';

/** Most features a distribution may describe, and most edges per feature (hostile or broken trainer output is refused). */
export const MAX_FEATURES = 1024;
const MAX_EDGES = 100;

const finite = z.number().finite();
const proportion = z.number().min(0).max(1);
const binned = z
  .object({ edges: z.array(finite).min(1).max(MAX_EDGES), proportions: z.array(proportion) })
  .refine((b) => b.proportions.length === b.edges.length + 1, { message: 'one proportion more than edges' })
  .refine((b) => b.edges.every((e, i) => i === 0 || b.edges[i - 1]! <= e), { message: 'edges must not decrease' });

/**
 * The training distribution the trainer records (trainers/common.py, training_distribution): per
 * feature the decile edges of the training split and the share of its rows in each bin, and the
 * model's scores on the same rows. Stored as a locked evidence object beside the artifact; its URI and
 * digest are in the version's environment (`trainingDistribution`).
 */
export const trainingDistributionSchema = z.object({
  version: z.literal(1),
  split: z.string().max(20),
  rows: z.number().int().min(1),
  features: z
    .array(z.intersection(z.object({ name: z.string().min(1).max(128) }), binned))
    .min(1)
    .max(MAX_FEATURES),
  score: z.intersection(binned, z.object({ positiveRate: proportion, meanConfidence: z.number().min(0.5).max(1) })),
});
export type TrainingDistribution = z.infer<typeof trainingDistributionSchema>;

/** Where a version's distribution is kept, as its environment record names it. */
export const distributionRefSchema = z.object({
  uri: z.string().regex(/^s3:\/\/[^/]+\/.+$/),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});
export type DistributionRef = z.infer<typeof distributionRefSchema>;
