import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { parse } from 'csv-parse';
import { DigestCounter } from '../storage/stream.ts';
import { CSV_OPTIONS, type DatasetSchema, type Exclusion, RowValidator } from './schema.ts';

export interface CertifyOutcome {
  rowsTotal: number;
  rowsAccepted: number;
  rowsExcluded: number;
  /** Of the excluded rows, those without consent for the declared purpose (the rest break the schema). */
  rowsExcludedForConsent: number;
  /** Consent exclusions re-included by an approved override: line and the reason that was set aside. */
  overridden: Exclusion[];
  /** Every exclusion, up to `maxRecordedExclusions` (then `exclusionsTruncated`). */
  exclusions: Exclusion[];
  exclusionsTruncated: boolean;
  /** Exclusions counted by kind (the reason without the cell's value), most frequent first. */
  reasonCounts: Array<{ reason: string; rows: number }>;
  rawBytes: number;
  rawSha256: string;
  certifiedBytes: number;
  certifiedSha256: string;
}

export class EmptyFileError extends Error {
  override name = 'EmptyFileError';
}

/**
 * Certifies a raw CSV as a stream: hashes the raw bytes as they pass, judges each row with the
 * RowValidator, and writes the accepted rows to `outFile` (hashing them too). Memory is bounded by
 * one record and the exclusions kept, whatever the file's size.
 */
export async function certifyStream(opts: {
  source: Readable;
  schema: DatasetSchema;
  outFile: string;
  maxRecordedExclusions: number;
  /** The lifecycle's declared purpose (consent is judged against it). */
  purpose?: string;
  /** Lines (1-based, as in exclusions) an approved override re-includes; only consent exclusions can be. */
  reinclude?: ReadonlySet<number>;
  onProgress?: (rows: number) => void;
}): Promise<CertifyOutcome> {
  const raw = new DigestCounter();
  const exclusions: Exclusion[] = [];
  const counts = new Map<string, number>();
  let excluded = 0;
  let excludedForConsent = 0;
  const overridden: Exclusion[] = [];
  const exclude = (line: number, reason: string, kind: string) => {
    excluded += 1;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    if (exclusions.length < opts.maxRecordedExclusions) exclusions.push({ line, reason });
  };
  const parser = parse(CSV_OPTIONS);
  parser.on('skip', (err: { code?: string; lines?: number }) => {
    const kind = `malformed CSV record (${err.code ?? 'unknown'})`;
    exclude(err.lines ?? 0, kind, kind);
  });
  const parsing = pipeline(opts.source, raw, parser);
  // Leaving the loop early (a header mismatch) destroys the parser and rejects `parsing`; that
  // rejection is expected then and must not go unhandled (it would end the worker process).
  parsing.catch(() => undefined);
  const out = fs.createWriteStream(opts.outFile);
  const outHash = createHash('sha256');
  let outBytes = 0;
  const write = async (text: string) => {
    outHash.update(text);
    outBytes += Buffer.byteLength(text);
    if (!out.write(text)) await once(out, 'drain');
  };

  let validator: RowValidator | undefined;
  let rows = 0;
  let accepted = 0;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (!validator) {
        validator = new RowValidator(opts.schema, record, opts.purpose);
        await write(`${validator.headerLine}\n`);
        continue;
      }
      rows += 1;
      const v = validator.row(record);
      if (v.ok) {
        accepted += 1;
        await write(`${v.line}\n`);
      } else if (v.category === 'consent' && opts.reinclude?.has(info.lines)) {
        accepted += 1;
        if (overridden.length < opts.maxRecordedExclusions) overridden.push({ line: info.lines, reason: v.reason });
        await write(`${v.line}\n`);
      } else {
        if (v.category === 'consent') excludedForConsent += 1;
        exclude(info.lines, v.reason, v.kind);
      }
      if (rows % 20_000 === 0) opts.onProgress?.(rows);
    }
    await parsing;
  } finally {
    out.end();
    await finished(out).catch(() => undefined);
    opts.source.destroy();
  }
  if (!validator) throw new EmptyFileError('the file has no header row');
  const malformed = [...counts.entries()].filter(([k]) => k.startsWith('malformed')).reduce((n, [, c]) => n + c, 0);
  exclusions.sort((a, b) => a.line - b.line);
  return {
    rowsTotal: rows + malformed,
    rowsAccepted: accepted,
    rowsExcluded: excluded,
    rowsExcludedForConsent: excludedForConsent,
    overridden,
    exclusions,
    exclusionsTruncated: excluded > exclusions.length,
    reasonCounts: [...counts.entries()].map(([reason, n]) => ({ reason, rows: n })).sort((a, b) => b.rows - a.rows || a.reason.localeCompare(b.reason)),
    rawBytes: raw.bytes,
    rawSha256: raw.digest(),
    certifiedBytes: outBytes,
    certifiedSha256: `sha256:${outHash.digest('hex')}`,
  };
}
