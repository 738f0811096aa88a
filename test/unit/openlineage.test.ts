import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadEnv, projectRoot } from '../../src/config/env.ts';
import { venvPaths } from '../../src/config/venv.ts';
import { datasetLineage } from '../../src/datasets/lineage.ts';
import { datasetSchemaSchema } from '../../src/datasets/schema.ts';
import { customFacet, datasetRef, identityColumnLineage, modelColumnLineage, runEvent, runUuid, schemaFacets } from '../../src/lineage/openlineage.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lineageEndpoint, openLineageFile, sendRunEvent } from '../../src/lineage/transport.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openlineage-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const verifier = path.join(projectRoot, 'test', 'verifiers', 'verify_openlineage.py');

/** The official client (openlineage-python) judges the events: exit 0 and one line per event, or exit 1 and why. */
function verify(events: unknown[]) {
  const file = path.join(tmp, `e-${Math.random().toString(16).slice(2)}.jsonl`);
  fs.writeFileSync(file, events.map((e) => JSON.stringify(e)).join('\n'));
  const r = spawnSync(venvPaths(loadEnv()).python, [verifier, file], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const schema = datasetSchemaSchema.parse(JSON.parse(fs.readFileSync(path.join(projectRoot, 'datasets', 'german-credit', 'schema.json'), 'utf8')));
const lineage = datasetLineage(schema);
const raw = datasetRef('s3://factory-quarantine/german-credit/ab/german_credit.csv');
const base = {
  eventTime: '2026-11-27T16:00:00.000Z',
  runId: runUuid('wf', 'run', '3', '1'),
  namespace: 'ai-factory',
  parent: { runId: '0b6e4c1e-5c1a-4e8e-9d9a-2f1f6c9b1a11', job: 'lifecycle-x' },
};
const certifyComplete = runEvent({
  ...base,
  eventType: 'COMPLETE',
  job: 'factory.certify',
  inputs: [{ ...raw, facets: schemaFacets(schema, lineage.columns, lineage.derivationsSha256, false) }],
  outputs: [
    {
      ...datasetRef('s3://factory-certified/german-credit/cd/data.csv'),
      facets: {
        ...schemaFacets(schema, lineage.columns, lineage.derivationsSha256, true),
        columnLineage: identityColumnLineage(raw, lineage.columns),
        factory_exclusions: customFacet('ExclusionsDatasetFacet', { rowsTotal: 1000, rowsExcluded: 0 }),
      },
    },
  ],
});

describe('OpenLineage RunEvents (checked by the official openlineage-python client)', () => {
  it('START, COMPLETE with schema, dataSource, ownership and columnLineage, and FAIL with errorMessage pass', { timeout: 60_000 }, () => {
    const start = runEvent({ ...base, eventType: 'START', job: 'factory.certify', inputs: [raw] });
    const train = runEvent({
      ...base,
      eventType: 'COMPLETE',
      job: 'factory.train.credit',
      inputs: [datasetRef('s3://factory-certified/german-credit/cd/data.csv')],
      outputs: [{ ...datasetRef('s3://factory-artifacts/m.onnx'), facets: { columnLineage: modelColumnLineage(raw, schema) } }],
    });
    const fail = runEvent({ ...base, eventType: 'FAIL', job: 'factory.certify', inputs: [raw], error: 'OverrideRefused: the override is not signed' });
    const r = verify([start, certifyComplete, train, fail]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { standard: string[]; custom: string[] });
    expect(lines[1]!.standard).toEqual(['columnLineage', 'dataSource', 'jobType', 'ownership', 'parent', 'schema']);
    expect(lines[1]!.custom).toEqual(['factory_classification', 'factory_derivations', 'factory_exclusions']);
    expect(lines[3]!.standard).toContain('errorMessage');
  });

  it('the check is real: a run id that is no UUID, a facet field the spec lacks, a stale facet version are each refused', { timeout: 120_000 }, () => {
    const bad1 = { ...certifyComplete, run: { ...certifyComplete.run, runId: 'run-1' } };
    expect(verify([bad1])).toMatchObject({ code: 1 });
    const bad2 = structuredClone(certifyComplete);
    (bad2.outputs[0]!.facets!.ownership as Record<string, unknown>).owner = 'x';
    expect(verify([bad2])).toMatchObject({ code: 1, err: expect.stringMatching(/TypeError|serialises the event differently/) });
    const bad3 = structuredClone(certifyComplete);
    bad3.outputs[0]!.facets!.schema!._schemaURL = 'https://openlineage.io/spec/facets/1-0-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet';
    expect(verify([bad3]).err).toMatch(/_schemaURL/);
  });

  it('names runs by a stable UUID per stage attempt, and finds the Marquez endpoint from a base URL', () => {
    expect(runUuid('a', 'b')).toBe(runUuid('a', 'b'));
    expect(runUuid('a', 'b')).not.toBe(runUuid('a', 'c'));
    expect(runUuid('a')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(lineageEndpoint('http://marquez:5000')).toBe('http://marquez:5000/api/v1/lineage');
    expect(lineageEndpoint('http://marquez:5000/api/v1/lineage')).toBe('http://marquez:5000/api/v1/lineage');
  });

  it('sends each event as one POST to <base>/api/v1/lineage (Marquez), or appends one line to the file', async () => {
    const got: Array<{ url?: string; type?: string; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        got.push({ url: req.url, type: req.headers['content-type'], body });
        res.writeHead(201).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const env = loadEnv({ ...process.env, FACTORY_HOME: tmp, FACTORY_OPENLINEAGE_TRANSPORT: 'http', FACTORY_OPENLINEAGE_URL: base });
      await sendRunEvent(env, certifyComplete);
      expect(got).toEqual([{ url: '/api/v1/lineage', type: 'application/json', body: JSON.stringify(certifyComplete) }]);
      const fileEnv = loadEnv({ ...process.env, FACTORY_HOME: tmp, FACTORY_OPENLINEAGE_TRANSPORT: 'file' });
      await sendRunEvent(fileEnv, certifyComplete);
      await sendRunEvent(fileEnv, certifyComplete);
      expect(fs.readFileSync(openLineageFile(fileEnv), 'utf8')).toBe(`${JSON.stringify(certifyComplete)}\n`.repeat(2));
    } finally {
      server.close();
    }
  });
});
