import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { InputRefused, insideRoots, parseDataRoots, parseInputLocation } from '../../src/datasets/lanes.ts';
import { type InputLanes, openInput, readInput } from '../../src/datasets/open-input.ts';
import { JOB_ENV_ALLOWED, jobEnv } from '../../src/jobs/child-env.ts';

const LANDING = 'factory-landing';

function refusal(fn: () => unknown): { type: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof InputRefused) return { type: err.type, message: err.message };
    throw err;
  }
  throw new Error('not refused');
}

describe('input lanes: judging a location (pure)', () => {
  it('accepts an absolute path and an object in the landing bucket', () => {
    expect(parseInputLocation('/data/x.csv', 'dataset', LANDING)).toEqual({ kind: 'file', path: '/data/x.csv' });
    expect(parseInputLocation('s3://factory-landing/a/b.csv', 'dataset', LANDING)).toEqual({ kind: 's3', bucket: LANDING, key: 'a/b.csv' });
  });
  it('refuses NUL, control characters, lone surrogates, relative paths, other schemes and .. segments', () => {
    expect(refusal(() => parseInputLocation('/data/x.csv\u0000.txt', 'dataset', LANDING)).type).toBe('InvalidDatasetPath');
    expect(refusal(() => parseInputLocation('/data/\u001b[2Jx.csv', 'dataset', LANDING)).type).toBe('InvalidDatasetPath');
    expect(refusal(() => parseInputLocation('/data/\ud800.csv', 'dataset', LANDING)).type).toBe('InvalidDatasetPath');
    expect(refusal(() => parseInputLocation('data/x.csv', 'dataset', LANDING)).type).toBe('InvalidDatasetPath');
    expect(refusal(() => parseInputLocation('file:///etc/passwd', 'dataset', LANDING)).type).toBe('InvalidDatasetPath');
    expect(refusal(() => parseInputLocation('/data/../etc/passwd', 'dataset', LANDING))).toEqual({
      type: 'DatasetOutsideAllowedRoots',
      message: `the dataset "/data/../etc/passwd" has a '..' segment`,
    });
    expect(refusal(() => parseInputLocation('x'.repeat(5000), 'dataset', LANDING)).type).toBe('InvalidDatasetPath');
  });
  it('refuses a bucket other than the landing bucket, and an empty key', () => {
    expect(refusal(() => parseInputLocation('s3://factory-evidence/x.csv', 'dataset', LANDING)).type).toBe('DatasetOutsideAllowedRoots');
    expect(refusal(() => parseInputLocation('s3://factory-landing/', 'dataset', LANDING)).type).toBe('InvalidDatasetPath');
  });
  it('a path is inside a root only at a segment boundary', () => {
    expect(insideRoots('/srv/data/x.csv', ['/srv/data'])).toBe(true);
    expect(insideRoots('/srv/data', ['/srv/data'])).toBe(true);
    expect(insideRoots('/srv/database/x.csv', ['/srv/data'])).toBe(false);
    expect(insideRoots('/etc/passwd', ['/srv/data', '/tmp/l'])).toBe(false);
    expect(insideRoots('/anything', ['/'])).toBe(true);
  });
  it('roots come from FACTORY_DATA_ROOTS or the defaults, absolute only', () => {
    expect(parseDataRoots(undefined, ['/a'])).toEqual(['/a']);
    expect(parseDataRoots('/x:/y/', ['/a'])).toEqual(['/x', '/y']);
    expect(() => parseDataRoots('/x:rel', ['/a'])).toThrow(/absolute/);
  });
});

describe('input lanes: opening a file (real filesystem)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lanes-'));
  const root = path.join(tmp, 'root');
  const outside = path.join(tmp, 'outside');
  fs.mkdirSync(root);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(root, 'ok.csv'), 'a,b\n1,2\n');
  fs.writeFileSync(path.join(outside, 'secret.csv'), 'TOP-SECRET-CONTENT\n');
  fs.symlinkSync(path.join(outside, 'secret.csv'), path.join(root, 'escape.csv'));
  fs.symlinkSync(outside, path.join(root, 'dir-escape'));
  fs.writeFileSync(path.join(root, 'big.csv'), 'x'.repeat(2000));
  fs.mkdirSync(path.join(root, 'sub'));
  const lanes: InputLanes = { roots: [fs.realpathSync(root)], landingBucket: LANDING, maxBytes: 1000 };
  const s3 = {} as S3Client; // never reached for local files
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function refused(location: string, maxBytes?: number) {
    const err = await readInput(s3, location, 'dataset', lanes, maxBytes ?? lanes.maxBytes).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputRefused);
    expect((err as Error).message).not.toContain('TOP-SECRET');
    return err as InputRefused;
  }

  it('reads a file inside the root', async () => {
    expect((await readInput(s3, path.join(root, 'ok.csv'), 'dataset', lanes, 1000)).toString()).toBe('a,b\n1,2\n');
    const opened = await openInput(s3, path.join(root, 'ok.csv'), 'dataset', lanes);
    opened.stream.destroy();
    expect(opened).toMatchObject({ size: 8, name: 'ok.csv', source: path.join(fs.realpathSync(root), 'ok.csv') });
  });
  it('refuses a file outside, a symlink (file or directory) pointing out, and says nothing of existence outside', async () => {
    expect((await refused(path.join(outside, 'secret.csv'))).type).toBe('DatasetOutsideAllowedRoots');
    expect((await refused(path.join(root, 'escape.csv'))).type).toBe('DatasetOutsideAllowedRoots');
    expect((await refused(path.join(root, 'dir-escape', 'secret.csv'))).type).toBe('DatasetOutsideAllowedRoots');
    expect((await refused('/etc/passwd')).type).toBe('DatasetOutsideAllowedRoots');
    expect((await refused(path.join(outside, 'no-such-file.csv'))).type).toBe('DatasetOutsideAllowedRoots');
    expect((await refused(path.join(root, 'no-such-file.csv'))).type).toBe('DatasetUnreadable');
  });
  it('refuses a directory, a device and a file over the size cap', async () => {
    expect((await refused(path.join(root, 'sub'))).type).toBe('DatasetUnreadable');
    expect((await refused(path.join(root, 'big.csv'))).type).toBe('DatasetTooLarge');
    const devLanes: InputLanes = { ...lanes, roots: ['/dev'] };
    const err = await readInput(s3, '/dev/zero', 'dataset', devLanes, 1000).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'DatasetUnreadable' });
  });
});

describe('job environment', () => {
  it('passes the allow-list and JOB_DIR, never credentials or the control plane', () => {
    const source = {
      PATH: '/usr/bin',
      HOME: '/home/w',
      LANG: 'C.UTF-8',
      CUDA_VISIBLE_DEVICES: '0',
      AWS_ACCESS_KEY_ID: 'AKIA',
      AWS_SECRET_ACCESS_KEY: 'secret',
      DATABASE_URL: 'postgres://u:p@h/db',
      TEMPORAL_ADDRESS: 'h:7233',
      S3_ENDPOINT: 'http://h',
      FACTORY_POLICY_PACK: '/p.yaml',
    };
    const out = jobEnv(source, '/jobs/x');
    expect(out).toEqual({ PATH: '/usr/bin', HOME: '/home/w', LANG: 'C.UTF-8', CUDA_VISIBLE_DEVICES: '0', PYTHONNOUSERSITE: '1', JOB_DIR: '/jobs/x' });
    expect(JOB_ENV_ALLOWED.some((k) => /AWS|DATABASE|TEMPORAL|S3|SECRET|TOKEN|PASSWORD/.test(k))).toBe(false);
  });
});
