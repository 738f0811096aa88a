import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { certifyStream } from '../../src/datasets/certify.ts';
import { type DatasetSchema, SchemaMismatchError, validateRows } from '../../src/datasets/schema.ts';
import { sha256Digest } from '../../src/storage/objects.ts';

const schema: DatasetSchema = {
  name: 't',
  classification: 'public',
  label: { column: 'y', positive: 'M', values: ['M', 'B', 'a,b'] },
  features: [
    { name: 'a', type: 'number', min: 0 },
    { name: 'b', type: 'number' },
  ],
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certify-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A stream in small pieces, so records straddle chunk boundaries as they do from S3. */
function chunked(text: string, size = 7): Readable {
  const buf = Buffer.from(text);
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

describe('the streaming certifier (csv-parse + the numeric rule)', () => {
  it('excludes strictly with reasons, counts reasons, and writes exactly the accepted rows', async () => {
    const raw = 'a,b,y\r\n1,2,M\r\n0x1A,2,B\r\n 1,2,B\r\nInfinity,2,M\r\n1_000,2,M\r\n"3",4,"a,b"\n5,6,Q\n7,8\n1e1,-2,B\n';
    const outFile = path.join(tmp, 'out.csv');
    const r = await certifyStream({ source: chunked(raw), schema, outFile, maxRecordedExclusions: 100 });
    const out = fs.readFileSync(outFile, 'utf8');
    expect(out).toBe('a,b,y\n1,2,M\n3,4,"a,b"\n1e1,-2,B\n');
    expect(r).toMatchObject({
      rowsTotal: 9,
      rowsAccepted: 3,
      rowsExcluded: 6,
      exclusionsTruncated: false,
      rawSha256: sha256Digest(raw),
      certifiedSha256: sha256Digest(out),
    });
    expect(r.exclusions).toEqual([
      { line: 3, reason: 'a="0x1A" is not a number (hexadecimal)' },
      { line: 4, reason: 'a=" 1" is not a number (whitespace)' },
      { line: 5, reason: 'a="Infinity" is not a number (not-finite)' },
      { line: 6, reason: 'a="1_000" is not a number (digit-separator)' },
      { line: 8, reason: 'y="Q" is not one of M, B, a,b' },
      { line: 9, reason: 'expected 3 fields, found 2' },
    ]);
    expect(r.reasonCounts[0]).toEqual({ reason: 'a: not a number (digit-separator)', rows: 1 });
    expect(r.reasonCounts.reduce((n, c) => n + c.rows, 0)).toBe(6);
  });

  it('keeps at most maxRecordedExclusions but counts them all', async () => {
    const raw = `a,b,y\n${'x,1,M\n'.repeat(50)}1,1,M\n`;
    const r = await certifyStream({ source: chunked(raw, 64), schema, outFile: path.join(tmp, 'o2.csv'), maxRecordedExclusions: 10 });
    expect(r).toMatchObject({ rowsTotal: 51, rowsExcluded: 50, exclusionsTruncated: true });
    expect(r.exclusions).toHaveLength(10);
    expect(r.reasonCounts).toEqual([{ reason: 'a: not a number (not-decimal)', rows: 50 }]);
  });

  it('a malformed record (unterminated quote) is an exclusion, not a crash', async () => {
    const r = await certifyStream({ source: chunked('a,b,y\n1,1,M\n"2,1,M\n'), schema, outFile: path.join(tmp, 'o3.csv'), maxRecordedExclusions: 10 });
    expect(r.rowsAccepted).toBe(1);
    expect(r.exclusions).toEqual([{ line: 3, reason: 'malformed CSV record (CSV_QUOTE_NOT_CLOSED)' }]);
  });

  it('a header mismatch names the schema columns and counts, never the file line', async () => {
    const secret = 'patient_name_Jane_Doe';
    const run = certifyStream({ source: chunked(`a,${secret},y\n1,2,M\n`), schema, outFile: path.join(tmp, 'o4.csv'), maxRecordedExclusions: 10 });
    await expect(run).rejects.toBeInstanceOf(SchemaMismatchError);
    await expect(run).rejects.toThrow('header does not match schema "t": missing b; 1 unexpected column (the file has 3 columns; the schema expects 3)');
    expect(() => validateRows(`a,b,y,${secret}\n`, schema)).toThrow(/^header does not match schema "t": 1 unexpected column \(the file has 4 columns/);
    expect(() => validateRows('a,b,y,a\n', schema)).toThrow(/1 repeated column name/);
  });

  it('cell excerpts in reasons are bounded and escaped', () => {
    const r = validateRows(`a,b,y\n${'9'.repeat(30)}\u001b[2J${'x'.repeat(100)},1,M\n`, schema);
    expect(r.exclusions[0]!.reason).toMatch(/^a="9{30}\\u001b\[2Jx{6}…" is not a number$/);
  });
});
