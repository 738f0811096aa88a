import { DeleteObjectCommand, HeadObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { LegalHoldResult, RetentionReport } from '../../src/domain/governance.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import { putOnce } from '../../src/storage/objects.ts';
import { env } from '../helpers.ts';
import { factoryCli, lifecycleSuite, insertDatasetRecord } from './harness.ts';

const suite = lifecycleSuite({ startWorkers: false });
const s3 = createS3(env);

async function versions(bucketName: string, key: string): Promise<string[]> {
  const res = await s3.send(new ListObjectVersionsCommand({ Bucket: bucketName, Prefix: key }));
  return (res.Versions ?? []).filter((v) => v.Key === key).map((v) => v.VersionId!);
}

describe('legal hold and the retention job', () => {
  it('a held object outlives its retention and the sweep; the hold is released only by a second principal, then the sweep deletes it with a tombstone', async () => {
    const { workers, db } = suite;
    await workers.start('control');
    const cli = (args: string[]) => factoryCli(args, { FACTORY_TASK_QUEUE_PREFIX: workers.prefix });
    const name = `hold-${randomBytes(4).toString('hex')}`;
    const caseId = `CASE-${name}`;
    // A PHI dataset's records (raw, certified data and manifest, evidence manifest), locked (COMPLIANCE)
    // for a few seconds only, and a loose object beside them.
    const retainUntil = new Date(Date.now() + 4_000);
    const quarantine = bucket(env, 'quarantine');
    const certified = bucket(env, 'certified');
    const manifest = JSON.stringify({ dataset: name, classification: 'phi' });
    const raw = await putOnce(s3, quarantine, `${name}/raw/wdbc.csv`, 'a,b\n1,2\n', { retainUntil });
    const data = await putOnce(s3, certified, `${name}/c/data.csv`, 'a,b\n1,2\n', { retainUntil });
    await putOnce(s3, certified, `${name}/c/manifest.json`, manifest, { retainUntil });
    const evidence = await putOnce(s3, bucket(env, 'evidence'), `datasets/${name}/m.manifest.json`, manifest, { retainUntil });
    await putOnce(s3, quarantine, `${name}-loose/other.csv`, 'x\n', { retainUntil });
    await insertDatasetRecord(db, { name, manifest, raw, data, evidence });

    const placed = await cli(['hold', 'place', '--case', caseId, '--dataset', name, '--as', 'dana@hospital.example', '--reason', 'litigation hold', '--json']);
    expect(placed.code, placed.stderr).toBe(0);
    const placedResult = JSON.parse(placed.stdout) as LegalHoldResult;
    expect(placedResult).toMatchObject({ caseId, action: 'place', by: 'dana@hospital.example', scope: { dataset: name }, objects: 4, existing: false });
    const rawVersion = (await versions(quarantine, `${name}/raw/wdbc.csv`))[0]!;
    expect((await s3.send(new HeadObjectCommand({ Bucket: quarantine, Key: `${name}/raw/wdbc.csv`, VersionId: rawVersion }))).ObjectLockLegalHoldStatus).toBe(
      'ON',
    );

    await sleep(Math.max(0, retainUntil.getTime() - Date.now() + 1_000));
    const report = await cli(['retention', 'report', '--prefix', name, '--json']);
    expect(report.code, report.stderr).toBe(0);
    const groups = (JSON.parse(report.stdout) as RetentionReport).groups;
    expect(groups).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ recordType: 'raw', classification: 'phi', objects: 1, due: 0, held: 1, heldPastRetention: 1, deleted: 0 }),
        expect.objectContaining({ recordType: 'certified', classification: 'phi', objects: 2, due: 0, held: 2 }),
        expect.objectContaining({ recordType: 'raw', classification: 'unknown', objects: 1, due: 1, held: 0 }),
      ]),
    );

    // The routine sweep deletes only what policy allows: the loose object, with a tombstone; the held ones stay.
    const swept = await cli(['retention', 'run', '--prefix', name, '--json']);
    expect(swept.code, swept.stderr).toBe(0);
    const sweep = JSON.parse(swept.stdout) as RetentionReport;
    expect(sweep).toMatchObject({ mode: 'delete', deleted: 1, tombstones: 1 });
    expect(await versions(quarantine, `${name}-loose/other.csv`)).toEqual([]);
    expect(await versions(quarantine, `${name}/raw/wdbc.csv`)).toEqual([rawVersion]);
    const tombstones = await db.selectFrom('retention_tombstones').selectAll().where('sweep_id', '=', sweep.sweepId).execute();
    expect(tombstones).toHaveLength(1);
    expect(tombstones[0]).toMatchObject({ bucket: quarantine, key: `${name}-loose/other.csv`, record_type: 'raw' });
    // The store itself refuses deleting the held version, past its retention.
    await expect(s3.send(new DeleteObjectCommand({ Bucket: quarantine, Key: `${name}/raw/wdbc.csv`, VersionId: rawVersion }))).rejects.toThrow();

    // The principal who placed the hold cannot release it (the workflow refuses; so does the database).
    const same = await cli(['hold', 'release', '--case', caseId, '--as', 'dana@hospital.example', '--reason', 'case closed']);
    expect(same.code).toBe(4);
    expect(same.stderr).toContain('SamePrincipal');
    await expect(
      db.insertInto('legal_hold_releases').values({ case_id: caseId, released_by: 'DANA@hospital.example', reason: 'x', workflow_id: 'direct' }).execute(),
    ).rejects.toThrow(/a different principal must release it/);
    // Nor can a principal without the compliance or legal role.
    expect((await cli(['hold', 'release', '--case', caseId, '--as', 'omar@hospital.example', '--reason', 'case closed'])).code).toBe(4);

    const released = await cli(['hold', 'release', '--case', caseId, '--as', 'max@hospital.example', '--reason', 'case closed', '--json']);
    expect(released.code, released.stderr).toBe(0);
    expect(JSON.parse(released.stdout)).toMatchObject({ caseId, action: 'release', by: 'max@hospital.example', objects: 4, stillHeld: 0 });

    const after = JSON.parse((await cli(['retention', 'run', '--prefix', name, '--json'])).stdout) as RetentionReport;
    expect(after.deleted).toBe(3); // raw, certified data and its manifest (the evidence manifest is outside the prefix)
    expect(await versions(quarantine, `${name}/raw/wdbc.csv`)).toEqual([]);

    const kinds = (
      await db.selectFrom('audit_events').select(['kind', 'actor']).where('workflow_id', 'like', `${workers.prefix}%`).orderBy('seq').execute()
    ).map((e) => `${e.kind} ${e.actor}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'legal-hold.placed dana@hospital.example',
        'legal-hold.refused dana@hospital.example',
        'legal-hold.refused omar@hospital.example',
        'legal-hold.released max@hospital.example',
        'retention.swept factory',
      ]),
    );
  }, 600_000);
});
