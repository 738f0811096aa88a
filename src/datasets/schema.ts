import type { Options as CsvOptions } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import * as z from 'zod';
import { DATA_CLASSIFICATIONS, type DataClassification, dataClassificationSchema } from '../domain/classification.ts';
import { parseNumber } from './numbers.ts';

/** A purpose a dataset may be used for (and a lifecycle declares): a short lowercase id. */
export const purposeSchema = z.string().regex(/^[a-z][a-z0-9-]{1,63}$/, 'a purpose id: lowercase letters, digits and -, 2 to 64 characters');

const columnName = z.string().min(1).max(200);
const shortText = z.string().min(1).max(500).regex(/^[^\p{Cc}]*$/u, 'no control characters');

/**
 * Who answers for the data and on what terms: owner, source system, the lawful basis, the purposes it
 * may serve, and how long it is kept. Recorded in every manifest and OpenLineage event of the dataset.
 */
export const governanceSchema = z.object({
  owner: z.string().email(),
  sourceSystem: shortText,
  legalBasis: shortText,
  purposes: z.array(purposeSchema).min(1).max(50),
  /** How long the raw and certified data are kept (a duration like 7y or 2190d). */
  retention: z.string().regex(/^\d{1,5}[dy]$/, 'a duration like 7y or 2190d'),
});

/**
 * A transform the trainer applies to the certified columns before the model sees them. Declared so the
 * manifest (and through it the provenance) names them by digest; the trainer refuses one it does not apply.
 */
export const derivationSchema = z.object({
  output: columnName,
  transform: z.enum(['standardize']),
  inputs: z.array(columnName).min(1).max(10_000),
  /** Where the transform's parameters (mean, standard deviation) are fitted. */
  fittedOn: z.enum(['training-split']),
});

/** A dataset's declared schema (datasets/<name>/schema.json). */
export const datasetSchemaSchema = z
  .object({
    name: z.string().regex(/^[\w.-]{1,128}$/, 'letters, digits, ., _ and -'),
    description: z.string().max(10_000).optional(),
    /** The dataset's lineage domain (placement, retention and read logging follow it). */
    classification: dataClassificationSchema,
    governance: governanceSchema.optional(),
    /**
     * Rows carry consent: this column lists the purposes (separated by ";") each row's subject agreed to.
     * Absent: the dataset has no consent column and rests on `governance.legalBasis`.
     */
    consent: z.object({ column: columnName, separator: z.literal(';').default(';') }).optional(),
    /** Columns kept for traceability only (a record id): checked present, never certified nor trained on. */
    identifiers: z.array(z.object({ name: columnName, classification: dataClassificationSchema.optional() })).max(10).optional(),
    label: z.object({
      column: columnName,
      positive: z.string().max(200),
      values: z.array(z.string().max(200)).min(2).max(1_000),
      classification: dataClassificationSchema.optional(),
    }),
    features: z
      .array(
        z.object({
          name: columnName,
          type: z.literal('number'),
          min: z.number().optional(),
          max: z.number().optional(),
          /** The column's own lineage domain; absent: the dataset's. */
          classification: dataClassificationSchema.optional(),
        }),
      )
      .min(1)
      .max(10_000),
    derivations: z.array(derivationSchema).max(100).optional(),
  })
  .superRefine((s, ctx) => {
    const rank = (c: DataClassification) => DATA_CLASSIFICATIONS.indexOf(c);
    const columns = [...s.features, { name: s.label.column, classification: s.label.classification }, ...(s.identifiers ?? [])];
    // Placement reads the dataset's class: a column more sensitive than its dataset would be under-protected.
    for (const c of columns) {
      if (c.classification && rank(c.classification) > rank(s.classification)) {
        ctx.addIssue({ code: 'custom', path: ['classification'], message: `column ${c.name} is ${c.classification}, more sensitive than the dataset's ${s.classification}` });
      }
    }
    const names = [...columns.map((c) => c.name), ...(s.consent ? [s.consent.column] : [])];
    if (new Set(names).size !== names.length) ctx.addIssue({ code: 'custom', path: ['features'], message: 'a column is declared twice' });
    if (s.consent && !s.governance) ctx.addIssue({ code: 'custom', path: ['governance'], message: 'a dataset with a consent column declares its governance (purposes)' });
    const features = new Set(s.features.map((f) => f.name));
    for (const d of s.derivations ?? []) {
      const unknown = d.inputs.filter((i) => !features.has(i));
      if (unknown.length) ctx.addIssue({ code: 'custom', path: ['derivations'], message: `derivation ${d.output} reads undeclared features: ${unknown.slice(0, 5).join(', ')}` });
    }
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

/**
 * A row's verdict. `category` separates what the data breaks (schema) from what its subject did not agree
 * to (consent): only schema violations count against the tier's excluded fraction, and only a consent
 * exclusion can be re-included by a signed override (its certified `line` is kept for that).
 */
export type RowVerdict = { ok: true; line: string } | { ok: false; reason: string; kind: string; category: 'schema' } | { ok: false; reason: string; kind: string; category: 'consent'; line: string };

/** The lifecycle's declared purpose, judged against what the dataset allows. */
export class PurposeRefused extends Error {
  override name = 'PurposeRefused';
}

/**
 * Judges rows against a schema, one at a time (the certifier streams). `reason` names the row's
 * problem (bounded cell excerpts); `kind` is the same without the value, for counting reasons.
 */
export class RowValidator {
  readonly header: string[];
  readonly headerLine: string;
  private readonly index: Map<string, number>;
  private readonly labels: Set<string>;
  /** Indexes of the certified columns (features and label, in the file's order): identifiers and consent are not certified. */
  private readonly kept: number[];
  private readonly consentIndex: number | undefined;

  /** A header that does not match the schema refuses the whole file; the error names only schema columns and counts. */
  constructor(
    private readonly schema: DatasetSchema,
    header: string[],
    private readonly purpose?: string,
  ) {
    if (schema.consent && !purpose) throw new PurposeRefused(`dataset "${schema.name}" carries consent per row: the lifecycle must declare its purpose (one of ${schema.governance?.purposes.join(', ')})`);
    if (purpose && schema.governance && !schema.governance.purposes.includes(purpose)) {
      throw new PurposeRefused(`purpose "${purpose}" is not one the dataset "${schema.name}" may serve (${schema.governance.purposes.join(', ')})`);
    }
    const certified = [...schema.features.map((f) => f.name), schema.label.column];
    const expected = [...certified, ...(schema.identifiers ?? []).map((c) => c.name), ...(schema.consent ? [schema.consent.column] : [])];
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
    this.header = header.filter((h) => certified.includes(h));
    this.headerLine = this.header.map(quoteCell).join(',');
    this.index = new Map(header.map((h, i) => [h, i]));
    this.kept = this.header.map((h) => this.index.get(h)!);
    this.consentIndex = schema.consent ? this.index.get(schema.consent.column) : undefined;
    this.labels = new Set(schema.label.values);
  }

  row(cells: string[]): RowVerdict {
    const width = this.index.size;
    if (cells.length !== width) return { ok: false, reason: `expected ${width} fields, found ${cells.length}`, kind: 'wrong number of fields', category: 'schema' };
    for (const f of this.schema.features) {
      const raw = cells[this.index.get(f.name)!]!;
      const n = parseNumber(raw);
      if (!n.ok) {
        if (n.reason === 'empty') return { ok: false, reason: `${f.name} is empty`, kind: `${f.name}: empty`, category: 'schema' };
        return {
          ok: false,
          category: 'schema',
          reason: `${f.name}=${show(raw)} is not a number${n.reason === 'not-decimal' ? '' : ` (${n.reason})`}`,
          kind: `${f.name}: not a number (${n.reason})`,
        };
      }
      const shown = raw.length > 40 ? show(raw) : raw;
      if (f.min !== undefined && n.value < f.min) return { ok: false, reason: `${f.name}=${shown} is below the minimum ${f.min}`, kind: `${f.name}: below the minimum ${f.min}`, category: 'schema' };
      if (f.max !== undefined && n.value > f.max) return { ok: false, reason: `${f.name}=${shown} is above the maximum ${f.max}`, kind: `${f.name}: above the maximum ${f.max}`, category: 'schema' };
    }
    const column = this.schema.label.column;
    const label = cells[this.index.get(column)!]!;
    if (!this.labels.has(label)) {
      return { ok: false, reason: `${column}=${show(label)} is not one of ${this.schema.label.values.join(', ')}`, kind: `${column}: not one of the labels`, category: 'schema' };
    }
    const line = this.kept.map((i) => quoteCell(cells[i]!)).join(',');
    if (this.consentIndex !== undefined) {
      // Exact tokens: a consent recorded as "Research " is not consent to "research".
      const consented = cells[this.consentIndex]!.split(this.schema.consent!.separator);
      if (!consented.includes(this.purpose!)) {
        const column = this.schema.consent!.column;
        return { ok: false, reason: `no consent for purpose "${this.purpose}" (${column}=${show(cells[this.consentIndex]!)})`, kind: `consent: none for purpose ${this.purpose}`, category: 'consent', line };
      }
    }
    return { ok: true, line };
  }
}

/**
 * Validates a whole CSV text (small files and tests; the certifier streams through the same
 * RowValidator). Bad rows are excluded with a reason each; nothing is dropped silently.
 */
export function validateRows(text: string, schema: DatasetSchema, purpose?: string): ValidationResult {
  const exclusions: Exclusion[] = [];
  const records = parseSync(text, {
    ...CSV_OPTIONS,
    on_skip: (err: { code?: string; lines?: number } | undefined) => {
      if (err) exclusions.push({ line: err.lines ?? 0, reason: `malformed CSV record (${err.code ?? 'unknown'})` });
    },
  }) as unknown as Array<{ record: string[]; info: { lines: number } }>;
  const [head, ...rows] = records;
  const validator = new RowValidator(schema, head?.record ?? [], purpose);
  const accepted: string[] = [];
  for (const { record, info } of rows) {
    const v = validator.row(record);
    if (v.ok) accepted.push(v.line);
    else exclusions.push({ line: info.lines, reason: v.reason });
  }
  exclusions.sort((a, b) => a.line - b.line);
  return { header: validator.header, accepted, exclusions, rowsTotal: rows.length + exclusions.filter((e) => e.reason.startsWith('malformed')).length };
}
