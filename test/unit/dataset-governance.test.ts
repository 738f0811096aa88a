import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { certifyStream } from '../../src/datasets/certify.ts';
import { OVERRIDE_NAMESPACE, OverrideRefused, judgeOverride } from '../../src/datasets/override.ts';
import { type DatasetSchema, PurposeRefused, datasetSchemaSchema, validateRows } from '../../src/datasets/schema.ts';
import { projectRoot } from '../../src/config/env.ts';
import { sha256Digest } from '../../src/storage/objects.ts';
import { keyedTestPack } from '../signing.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'governance-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const schema: DatasetSchema = datasetSchemaSchema.parse({
  name: 'consented',
  classification: 'phi',
  governance: { owner: 'omar@hospital.example', sourceSystem: 'test', legalBasis: 'consent', purposes: ['diagnosis-research', 'marketing'], retention: '7y' },
  consent: { column: 'consent' },
  identifiers: [{ name: 'id', classification: 'pii' }],
  label: { column: 'y', positive: 'M', values: ['M', 'B'] },
  features: [{ name: 'a', type: 'number', min: 0 }],
});
const raw = 'id,a,y,consent\n1,1,M,diagnosis-research\n2,2,B,marketing\n3,x,M,diagnosis-research\n4,4,B,diagnosis-research;marketing\n5,5,M,\n';

describe('classified datasets: consent, purpose, column classes', () => {
  it('excludes rows without consent for the declared purpose, with the reason, beside schema violations; identifiers and consent are not certified', () => {
    const r = validateRows(raw, schema, 'diagnosis-research');
    expect(r.header).toEqual(['a', 'y']);
    expect(r.accepted).toEqual(['1,M', '4,B']);
    expect(r.exclusions).toEqual([
      { line: 3, reason: 'no consent for purpose "diagnosis-research" (consent="marketing")' },
      { line: 4, reason: 'a="x" is not a number' },
      { line: 6, reason: 'no consent for purpose "diagnosis-research" (consent="")' },
    ]);
  });

  it('a purpose the dataset does not allow, or none where rows carry consent, is refused before any row', () => {
    expect(() => validateRows(raw, schema, 'insurance-pricing')).toThrow(PurposeRefused);
    expect(() => validateRows(raw, schema)).toThrow(/must declare its purpose/);
  });

  it('counts consent exclusions apart, and re-includes only the consent exclusions an override names', async () => {
    const outFile = path.join(tmp, 'c.csv');
    const r = await certifyStream({
      source: Readable.from([raw]),
      schema,
      outFile,
      maxRecordedExclusions: 100,
      purpose: 'diagnosis-research',
      reinclude: new Set([3, 4]),
    });
    expect(fs.readFileSync(outFile, 'utf8')).toBe('a,y\n1,M\n2,B\n4,B\n');
    expect(r).toMatchObject({ rowsTotal: 5, rowsAccepted: 3, rowsExcluded: 2, rowsExcludedForConsent: 1 });
    // Line 4 breaks the schema: an override cannot bring it in (the activity then refuses the whole override).
    expect(r.overridden).toEqual([{ line: 3, reason: 'no consent for purpose "diagnosis-research" (consent="marketing")' }]);
  });

  it('refuses a column more sensitive than its dataset, and a derivation over an undeclared feature', () => {
    const base = JSON.parse(fs.readFileSync(path.join(projectRoot, 'datasets', 'german-credit', 'schema.json'), 'utf8')) as Record<string, unknown>;
    expect(datasetSchemaSchema.safeParse(base).success).toBe(true);
    const phiColumn = { ...base, identifiers: [{ name: 'OBS#', classification: 'phi' }] };
    expect(datasetSchemaSchema.safeParse(phiColumn).error?.issues[0]?.message).toMatch(/OBS# is phi, more sensitive than the dataset's financial/);
    const stray = { ...base, derivations: [{ output: 'z', transform: 'standardize', inputs: ['NOPE'], fittedOn: 'training-split' }] };
    expect(datasetSchemaSchema.safeParse(stray).error?.issues[0]?.message).toMatch(/undeclared features: NOPE/);
  });

  it('both shipped datasets validate, each in its own lineage domain, with no consent invented', () => {
    const read = (d: string) => datasetSchemaSchema.parse(JSON.parse(fs.readFileSync(path.join(projectRoot, 'datasets', d, 'schema.json'), 'utf8')));
    const [wdbc, credit] = [read('breast-cancer-wisconsin'), read('german-credit')];
    expect([wdbc.classification, credit.classification]).toEqual(['phi', 'financial']);
    expect([wdbc.consent, credit.consent]).toEqual([undefined, undefined]);
    expect(credit.governance?.legalBasis).toMatch(/no consent column/);
    const csv = fs.readFileSync(path.join(projectRoot, 'datasets', 'german-credit', 'german_credit.csv'));
    expect(sha256Digest(csv)).toBe('sha256:b045368f26431e781e032e5ba02e16cde876d870d1b42df6cbcfe69e64c486aa');
    expect(validateRows(csv.toString('utf8'), credit, 'credit-risk-research')).toMatchObject({ exclusions: [] });
  });
});

describe('a manual override is an approved decision (signed, judged against the pack)', () => {
  const { loaded, keys } = keyedTestPack();
  const rawSha256 = sha256Digest(raw);
  const statement = (over: Record<string, unknown> = {}) =>
    Buffer.from(
      JSON.stringify({
        type: 'factory-override/v1',
        dataset: 'consented',
        rawSha256,
        purpose: 'diagnosis-research',
        principal: 'dana@hospital.example',
        role: 'compliance',
        reason: 'consent given on paper, scanned in ticket 1234',
        reinclude: [{ line: 3, justification: 'paper consent form 1234' }],
        ...over,
      }),
    );
  const sign = (bytes: Buffer, keyFile: string, namespace = OVERRIDE_NAMESPACE) => {
    const file = path.join(tmp, `s-${Math.random().toString(16).slice(2)}`);
    fs.writeFileSync(file, bytes);
    execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', keyFile, '-n', namespace, file]);
    return fs.readFileSync(`${file}.sig`, 'utf8');
  };
  const expected = { dataset: 'consented', rawSha256, purpose: 'diagnosis-research' };
  const dana = keys['dana@hospital.example']!.file;

  it('accepts one signed by a compliance principal with her own key, and records who, which key, which lines', () => {
    const bytes = statement();
    const { approved } = judgeOverride(bytes, sign(bytes, dana), loaded.pack, expected);
    expect(approved).toMatchObject({ principal: 'dana@hospital.example', role: 'compliance', lines: [3], statementSha256: sha256Digest(bytes) });
    expect(approved.keyFingerprint).toMatch(/^SHA256:/);
  });

  it('refuses an unsigned one, another key, another namespace, a role that may not override, another file or purpose', () => {
    const bytes = statement();
    const refused = (f: () => unknown, re: RegExp) => {
      expect(f).toThrow(OverrideRefused);
      expect(f).toThrow(re);
    };
    refused(() => judgeOverride(bytes, undefined, loaded.pack, expected), /is not signed/);
    refused(() => judgeOverride(bytes, sign(bytes, keys['vera@hospital.example']!.file), loaded.pack, expected), /not one of dana@hospital.example's keys/);
    refused(() => judgeOverride(bytes, sign(bytes, dana, 'factory-approval'), loaded.pack, expected), /namespace "factory-approval"/);
    const tampered = statement({
      reinclude: [
        { line: 3, justification: 'paper consent form 1234' },
        { line: 6, justification: 'added later' },
      ],
    });
    refused(() => judgeOverride(tampered, sign(bytes, dana), loaded.pack, expected), /does not verify/);
    const vera = statement({ principal: 'vera@hospital.example', role: 'validator' });
    refused(() => judgeOverride(vera, sign(vera, keys['vera@hospital.example']!.file), loaded.pack, expected), /may not approve overrides/);
    refused(() => judgeOverride(bytes, sign(bytes, dana), loaded.pack, { ...expected, rawSha256: sha256Digest('other') }), /for the raw file/);
    refused(() => judgeOverride(bytes, sign(bytes, dana), loaded.pack, { ...expected, purpose: 'marketing' }), /for purpose "diagnosis-research"/);
    refused(() => judgeOverride(Buffer.from('{"type":"factory-override/v1","extra":1}'), undefined, loaded.pack, expected), /not valid/);
  });
});
