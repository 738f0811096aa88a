import { z } from 'zod';

/** A dataset's declared schema (datasets/<name>/schema.json). */
export const datasetSchemaSchema = z.object({
  name: z.string().min(1),
  description: z.string().optional(),
  classification: z.string().min(1),
  label: z.object({ column: z.string(), positive: z.string(), values: z.array(z.string()).min(2) }),
  features: z.array(z.object({ name: z.string(), type: z.literal('number'), min: z.number().optional(), max: z.number().optional() })).min(1),
});
export type DatasetSchema = z.infer<typeof datasetSchemaSchema>;

export interface Exclusion {
  /** 1-based line number in the raw file (the header is line 1). */
  line: number;
  reason: string;
}

export interface ValidationResult {
  header: string[];
  accepted: string[];
  exclusions: Exclusion[];
  rowsTotal: number;
}

export class SchemaMismatchError extends Error {
  override name = 'SchemaMismatchError';
}

/**
 * Validates every row of a CSV file (plain comma-separated values, no quoting) against the schema.
 * Bad rows are excluded with a reason each; nothing is dropped silently. A header that does not
 * match the schema refuses the whole file.
 */
export function validateRows(text: string, schema: DatasetSchema): ValidationResult {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  const expected = [...schema.features.map((f) => f.name), schema.label.column];
  const missing = expected.filter((c) => !header.includes(c));
  const extra = header.filter((c) => !expected.includes(c));
  if (missing.length || extra.length) {
    throw new SchemaMismatchError(
      `header does not match schema "${schema.name}": ${missing.length ? `missing ${missing.join(', ')}` : ''}${missing.length && extra.length ? '; ' : ''}${extra.length ? `unexpected ${extra.join(', ')}` : ''}`,
    );
  }
  const index = new Map(header.map((h, i) => [h, i]));
  const accepted: string[] = [];
  const exclusions: Exclusion[] = [];
  let rowsTotal = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' && i === lines.length - 1) continue;
    rowsTotal += 1;
    const cells = line.split(',').map((c) => c.trim());
    const reason = rowProblem(cells, header.length, index, schema);
    if (reason) exclusions.push({ line: i + 1, reason });
    else accepted.push(header.map((h) => cells[index.get(h)!]).join(','));
  }
  return { header, accepted, exclusions, rowsTotal };
}

function rowProblem(cells: string[], width: number, index: Map<string, number>, schema: DatasetSchema): string | undefined {
  if (cells.length !== width) return `expected ${width} fields, found ${cells.length}`;
  for (const f of schema.features) {
    const raw = cells[index.get(f.name)!]!;
    if (raw === '') return `${f.name} is empty`;
    const n = Number(raw);
    if (!Number.isFinite(n)) return `${f.name}=${JSON.stringify(raw)} is not a number`;
    if (f.min !== undefined && n < f.min) return `${f.name}=${raw} is below the minimum ${f.min}`;
    if (f.max !== undefined && n > f.max) return `${f.name}=${raw} is above the maximum ${f.max}`;
  }
  const label = cells[index.get(schema.label.column)!]!;
  if (!schema.label.values.includes(label)) return `${schema.label.column}=${JSON.stringify(label)} is not one of ${schema.label.values.join(', ')}`;
  return undefined;
}
