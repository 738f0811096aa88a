import type { Options as CsvOptions } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { z } from 'zod';
import { dataClassificationSchema } from '../domain/classification.ts';
import { parseNumber } from './numbers.ts';

/** A dataset's declared schema (datasets/<name>/schema.json). */
export const datasetSchemaSchema = z.object({
  name: z.string().regex(/^[\w.-]{1,128}$/, 'letters, digits, ., _ and -'),
  description: z.string().max(10_000).optional(),
  classification: dataClassificationSchema,
  label: z.object({ column: z.string().min(1).max(200), positive: z.string().max(200), values: z.array(z.string().max(200)).min(2).max(1_000) }),
  features: z
    .array(z.object({ name: z.string().min(1).max(200), type: z.literal('number'), min: z.number().optional(), max: z.number().optional() }))
    .min(1)
    .max(10_000),
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
 * The options of the one CSV reader (csv-parse) for raw files: RFC 4180 quoting, CRLF or LF line ends,
 * a BOM dropped, no trimming (a padded cell is refused by the numeric rule, not bent), every row kept
 * whatever its width (a wrong width is an exclusion with its reason), and a malformed record skipped
 * (and excluded) rather than ending the file. A record is capped so one unterminated quote cannot
 * swallow the memory.
 */
export const CSV_OPTIONS: CsvOptions = {
  bom: true,
  // Both line ends, in any mix: an export with lines appended by another tool is common.
  record_delimiter: ['\r\n', '\n'],
  relax_column_count: true,
  skip_empty_lines: false,
  skip_records_with_error: true,
  max_record_size: 1024 * 1024,
  info: true,
};

/** A cell as reasons show it: bounded, quoted, control characters escaped. */
function show(raw: string): string {
  return JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw);
}

/** RFC 4180 quoting, only where needed (a label may hold a comma; numbers never do). */
function quoteCell(cell: string): string {
  return /[",\r\n]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell;
}

export type RowVerdict = { ok: true; line: string } | { ok: false; reason: string; kind: string };

/**
 * Judges rows against a schema, one at a time (the certifier streams). `reason` names the row's
 * problem (bounded cell excerpts); `kind` is the same without the value, for counting reasons.
 */
export class RowValidator {
  readonly header: string[];
  readonly headerLine: string;
  private readonly index: Map<string, number>;
  private readonly labels: Set<string>;

  /** A header that does not match the schema refuses the whole file; the error names only schema columns and counts. */
  constructor(
    private readonly schema: DatasetSchema,
    header: string[],
  ) {
    const expected = [...schema.features.map((f) => f.name), schema.label.column];
    const missing = expected.filter((c) => !header.includes(c));
    const extra = header.filter((c) => !expected.includes(c)).length;
    const repeated = header.length - new Set(header).size;
    if (missing.length || extra || repeated) {
      const parts = [
        missing.length ? `missing ${missing.join(', ')}` : '',
        extra ? `${extra} unexpected column${extra === 1 ? '' : 's'}` : '',
        repeated ? `${repeated} repeated column name${repeated === 1 ? '' : 's'}` : '',
      ].filter(Boolean);
      throw new SchemaMismatchError(`header does not match schema "${schema.name}": ${parts.join('; ')} (the file has ${header.length} columns; the schema expects ${expected.length})`);
    }
    this.header = header;
    this.headerLine = header.map(quoteCell).join(',');
    this.index = new Map(header.map((h, i) => [h, i]));
    this.labels = new Set(schema.label.values);
  }

  row(cells: string[]): RowVerdict {
    const width = this.header.length;
    if (cells.length !== width) return { ok: false, reason: `expected ${width} fields, found ${cells.length}`, kind: 'wrong number of fields' };
    for (const f of this.schema.features) {
      const raw = cells[this.index.get(f.name)!]!;
      const n = parseNumber(raw);
      if (!n.ok) {
        if (n.reason === 'empty') return { ok: false, reason: `${f.name} is empty`, kind: `${f.name}: empty` };
        return {
          ok: false,
          reason: `${f.name}=${show(raw)} is not a number${n.reason === 'not-decimal' ? '' : ` (${n.reason})`}`,
          kind: `${f.name}: not a number (${n.reason})`,
        };
      }
      const shown = raw.length > 40 ? show(raw) : raw;
      if (f.min !== undefined && n.value < f.min) return { ok: false, reason: `${f.name}=${shown} is below the minimum ${f.min}`, kind: `${f.name}: below the minimum ${f.min}` };
      if (f.max !== undefined && n.value > f.max) return { ok: false, reason: `${f.name}=${shown} is above the maximum ${f.max}`, kind: `${f.name}: above the maximum ${f.max}` };
    }
    const column = this.schema.label.column;
    const label = cells[this.index.get(column)!]!;
    if (!this.labels.has(label)) {
      return { ok: false, reason: `${column}=${show(label)} is not one of ${this.schema.label.values.join(', ')}`, kind: `${column}: not one of the labels` };
    }
    return { ok: true, line: this.header.map((h) => quoteCell(cells[this.index.get(h)!]!)).join(',') };
  }
}

/**
 * Validates a whole CSV text (small files and tests; the certifier streams through the same
 * RowValidator). Bad rows are excluded with a reason each; nothing is dropped silently.
 */
export function validateRows(text: string, schema: DatasetSchema): ValidationResult {
  const exclusions: Exclusion[] = [];
  const records = parseSync(text, {
    ...CSV_OPTIONS,
    on_skip: (err: { code?: string; lines?: number } | undefined) => {
      if (err) exclusions.push({ line: err.lines ?? 0, reason: `malformed CSV record (${err.code ?? 'unknown'})` });
    },
  }) as unknown as Array<{ record: string[]; info: { lines: number } }>;
  const [head, ...rows] = records;
  const validator = new RowValidator(schema, head?.record ?? []);
  const accepted: string[] = [];
  for (const { record, info } of rows) {
    const v = validator.row(record);
    if (v.ok) accepted.push(v.line);
    else exclusions.push({ line: info.lines, reason: v.reason });
  }
  exclusions.sort((a, b) => a.line - b.line);
  return { header: validator.header, accepted, exclusions, rowsTotal: rows.length + exclusions.filter((e) => e.reason.startsWith('malformed')).length };
}
