import * as z from 'zod';

/**
 * Data classification: the lineage domain a dataset (and each of its columns) belongs to. Placement,
 * retention and read logging are decided from it. Ordered from least to most sensitive.
 */
export const dataClassificationSchema = z.enum(['public', 'financial', 'pii', 'phi']);
export type DataClassification = z.infer<typeof dataClassificationSchema>;
export const DATA_CLASSIFICATIONS = dataClassificationSchema.options;
