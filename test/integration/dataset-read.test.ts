import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createEnvDb } from '../../src/db/connect.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import { putOnce } from '../../src/storage/objects.ts';
import { env } from '../helpers.ts';
import { TEST_DATA, factoryCli, insertDatasetRecord } from './harness.ts';

const s3 = createS3(env);

describe('reads of a PHI dataset outside a lifecycle are recorded with who and why (HIPAA 164.312(b))', () => {
  it('factory dataset read records the read in the audit trail before writing the data to a new 0600 file; no purpose, no read', async () => {
    const db = createEnvDb(env, 2);
    try {
      const name = `phi-read-${randomBytes(4).toString('hex')}`;
      const csv = 'radius,diagnosis\n17.99,M\n';
      const hex = createHash('sha256').update(csv).digest('hex');
      const manifest = JSON.stringify({ dataset: name, classification: 'phi' });
      const data = await putOnce(s3, bucket(env, 'certified'), `${name}/${hex}/data.csv`, csv);
      const evidence = await putOnce(s3, bucket(env, 'evidence'), `datasets/${name}/m.manifest.json`, manifest);
      const raw = await putOnce(s3, bucket(env, 'quarantine'), `${name}/raw/x.csv`, csv);
      await insertDatasetRecord(db, { name, manifest, raw, data, evidence });
      fs.mkdirSync(TEST_DATA, { recursive: true });
      const out = path.join(TEST_DATA, `${name}.csv`);
      const events = () => db.selectFrom('audit_events').select(['kind', 'actor', 'payload']).where('workflow_id', '=', `dataset-read/${name}`).execute();

      const noPurpose = await factoryCli(['dataset', 'read', name, '--out', out]);
      expect(noPurpose.code).toBe(2);
      const badPurpose = await factoryCli(['dataset', 'read', name, '--out', out, '--purpose', 'a\u001b[2Jb']);
      expect(badPurpose.code).toBe(2);
      expect(await events()).toEqual([]);
      expect(fs.existsSync(out)).toBe(false);

      const read = await factoryCli([
        'dataset',
        'read',
        name,
        '--out',
        out,
        '--purpose',
        'IRB study 2026-04 cohort check',
        '--as',
        'lena@hospital.example',
        '--json',
      ]);
      expect(read.code, read.stderr).toBe(0);
      expect(JSON.parse(read.stdout)).toMatchObject({
        dataset: name,
        classification: 'phi',
        bytes: csv.length,
        sha256: `sha256:${hex}`,
        read: { reader: 'lena@hospital.example' },
      });
      expect(fs.readFileSync(out, 'utf8')).toBe(csv);
      expect(fs.statSync(out).mode & 0o777).toBe(0o600);
      expect(await events()).toEqual([
        {
          kind: 'dataset.read',
          actor: 'lena@hospital.example',
          payload: expect.objectContaining({ dataset: name, classification: 'phi', purpose: 'IRB study 2026-04 cohort check', object: data.uri }),
        },
      ]);

      // An existing file is never overwritten (and nothing more is recorded).
      expect((await factoryCli(['dataset', 'read', name, '--out', out, '--purpose', 'again'])).code).toBe(2);
      expect(await events()).toHaveLength(1);
      expect((await factoryCli(['dataset', 'read', `${name}-none`, '--out', `${out}.2`, '--purpose', 'missing'])).code).toBe(6);
      fs.rmSync(out);
    } finally {
      await db.destroy();
    }
  });
});
