import { canonicalJson } from '../audit/canonical.ts';
import type { DataClassification } from '../domain/classification.ts';
import { sha256Digest } from '../storage/objects.ts';
import type { DatasetSchema } from './schema.ts';

export interface ColumnLineage {
  name: string;
  role: 'feature' | 'label' | 'identifier' | 'consent';
  classification: DataClassification;
  /** Whether the column reaches the certified file (identifiers and consent stay in quarantine). */
  certified: boolean;
}

/** What a schema says about its columns' lineage: every column's role and class, and the derivations' digest. */
export function datasetLineage(schema: DatasetSchema): { columns: ColumnLineage[]; derivationsSha256: string } {
  const own = (c: DataClassification | undefined) => c ?? schema.classification;
  const columns: ColumnLineage[] = [
    ...(schema.identifiers ?? []).map((c) => ({ name: c.name, role: 'identifier' as const, classification: own(c.classification), certified: false })),
    ...schema.features.map((f) => ({ name: f.name, role: 'feature' as const, classification: own(f.classification), certified: true })),
    { name: schema.label.column, role: 'label' as const, classification: own(schema.label.classification), certified: true },
    ...(schema.consent ? [{ name: schema.consent.column, role: 'consent' as const, classification: schema.classification, certified: false }] : []),
  ];
  return { columns, derivationsSha256: sha256Digest(canonicalJson(schema.derivations ?? [])) };
}
