import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticWdbc } from '../../bench/synthetic.ts';
import { isAlive } from '../../src/dev/process.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { env } from '../helpers.ts';
import {
  DATASET,
  IMAGE,
  IsolatedWorkers,
  TEST_DATA,
  factoryCli,
  lifecycleSuite,
  randomCommit,
  startTestLifecycle,
  temporalCli,
  waitForStatus,
} from './harness.ts';

const SCHEMA = path.join(path.dirname(DATASET), 'schema.json');
const dir = path.join(TEST_DATA, 'data-lanes');
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true });

// A file outside every root, with contents that must never show up in a failure or the history.
const secretFile = path.join(env.FACTORY_HOME, 'outside-roots', 'secret.csv');
const SECRET = 'PATIENT-JANE-DOE-1961';
fs.mkdirSync(path.dirname(secretFile), { recursive: true });
fs.writeFileSync(secretFile, `${SECRET},x\n1,2\n`);
fs.rmSync(path.join(dir, 'escape.csv'), { force: true });
fs.symlinkSync(secretFile, path.join(dir, 'escape.csv'));

const realLines = fs.readFileSync(DATASET, 'utf8').trimEnd().split(/\r?\n/);
function writeCsv(name: string, lines: string[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}
/** A row of the real file with its first cell (radius_mean) replaced. */
const withRadius = (i: number, cell: string) => `${cell}${realLines[i]!.slice(realLines[i]!.indexOf(','))}`;

const AWS_SECRET = 'worker-only-secret-value';
const suite = lifecycleSuite({ workerEnv: { AWS_ACCESS_KEY_ID: 'factory-local', AWS_SECRET_ACCESS_KEY: AWS_SECRET } });
const { workers } = suite;

/** The ApplicationFailure that ended a lifecycle (through the activity failure). */
async function failureOf(workflowId: string): Promise<ApplicationFailure> {
  const err = await suite.client.workflow
    .getHandle(workflowId)
    .result()
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  let cause = (err as Error).cause;
  while (cause && !(cause instanceof ApplicationFailure)) cause = (cause as Error).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

async function historyText(workflowId: string): Promise<string> {
  return temporalCli(['workflow', 'show', '--workflow-id', workflowId, '--output', 'json']);
}

/** Starts a lifecycle through the `factory` CLI, on this file's workers. */
async function cliStart(model: string, dataset: string, extra: string[] = []): Promise<string> {
  const r = await factoryCli(
    [
      'lifecycle',
      'start',
      '--json',
      '--model',
      model,
      '--dataset',
      dataset,
      '--commit',
      randomCommit(),
      '--image',
      IMAGE,
      '--risk',
      'low',
      '--requester',
      'ci@hospital.example',
      '--developer',
      'alice@hospital.example',
      ...extra,
    ],
    { FACTORY_TASK_QUEUE_PREFIX: workers.prefix },
  );
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { workflowId: string }).workflowId;
}

const model = (suffix: string) => `bc-${workers.prefix.slice(1, -1)}-${suffix}`;

describe('input lanes (real stack)', () => {
  it('a path outside the roots, a symlink inside a root pointing out, and a `..` path are refused non-retryably, echoing no contents', async () => {
    const ids = await Promise.all([
      cliStart(model('etc'), '/etc/passwd', ['--schema', SCHEMA]),
      cliStart(model('outside'), secretFile, ['--schema', SCHEMA]),
      cliStart(model('symlink'), path.join(dir, 'escape.csv'), ['--schema', SCHEMA]),
      startTestLifecycle(suite.client, workers, { modelName: model('dotdot'), datasetPath: `${dir}/../../outside-roots/secret.csv`, schemaPath: SCHEMA }).then(
        (s) => s.workflowId,
      ),
      cliStart(model('schema'), DATASET, ['--schema', secretFile]),
    ]);
    for (const id of ids) {
      const f = await failureOf(id);
      expect(f.type).toBe('DatasetOutsideAllowedRoots');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toMatch(/outside the allowed data roots|has a '\.\.' segment/);
      const history = await historyText(id);
      expect(history).not.toContain(SECRET);
      expect(history).not.toContain('root:x:0');
      // Refused on the first attempt: no retry of a poison input.
      expect(history).not.toMatch(/"attempt":\s*2/);
    }
  });

  it('a header that does not match the schema fails as SchemaMismatch without echoing the line', async () => {
    const file = writeCsv('bad-header.csv', [realLines[0]!.replace('texture_mean', SECRET), ...realLines.slice(1, 20)]);
    const id = await cliStart(model('header'), file, ['--schema', SCHEMA]);
    const f = await failureOf(id);
    expect(f.type).toBe('SchemaMismatch');
    expect(f.message).toBe(
      'header does not match schema "breast-cancer-wisconsin": missing texture_mean; 1 unexpected column (the file has 31 columns; the schema expects 31)',
    );
    expect(await historyText(id)).not.toContain(SECRET);
  });

  it('a dataset in the landing bucket (s3://) is read with its schema from there; other buckets are refused', async () => {
    const s3 = createS3(env);
    const prefix = `lanes/${workers.prefix}`;
    try {
      await s3.send(new PutObjectCommand({ Bucket: bucket(env, 'landing'), Key: `${prefix}/wdbc.csv`, Body: fs.readFileSync(DATASET) }));
      await s3.send(new PutObjectCommand({ Bucket: bucket(env, 'landing'), Key: `${prefix}/schema.json`, Body: fs.readFileSync(SCHEMA) }));
    } finally {
      s3.destroy();
    }
    const ok = await startTestLifecycle(suite.client, workers, {
      modelName: model('landing'),
      datasetPath: `s3://${bucket(env, 'landing')}/${prefix}/wdbc.csv`,
    });
    const refused = await startTestLifecycle(suite.client, workers, {
      modelName: model('evidence'),
      datasetPath: `s3://${bucket(env, 'evidence')}/anything.csv`,
      schemaPath: SCHEMA,
    });
    expect((await failureOf(refused.workflowId)).type).toBe('DatasetOutsideAllowedRoots');
    await waitForStatus(suite.client, ok.workflowId, (s) => s.stage === 'approval', 240_000);
    const trace = JSON.parse((await factoryCli(['trace', ok.input.modelName, '--json'])).stdout) as ModelTrace;
    expect(trace.data).toMatchObject({ rowsTotal: 569, rowsAccepted: 569, rowsExcluded: 0 });
    await suite.client.workflow.getHandle(ok.workflowId).cancel();
  });
});

describe('strict numbers and the excluded-row limit (real stack)', () => {
  it('`0x1A` is excluded by the certifier with its reason; the trainer trains on the rest', async () => {
    const file = writeCsv('hex.csv', [...realLines, withRadius(1, '0x1A'), withRadius(2, '1_000')]);
    const id = await cliStart(model('hex'), file, ['--schema', SCHEMA, '--epochs', '200']);
    await waitForStatus(suite.client, id, (s) => s.stage === 'approval', 240_000);
    const trace = JSON.parse((await factoryCli(['trace', model('hex'), '--json'])).stdout) as ModelTrace;
    expect(trace.data).toMatchObject({ rowsTotal: 571, rowsAccepted: 569, rowsExcluded: 2 });
    expect(trace.data.exclusions).toEqual([
      { line: 571, reason: 'radius_mean="0x1A" is not a number (hexadecimal)' },
      { line: 572, reason: 'radius_mean="1_000" is not a number (digit-separator)' },
    ]);
    await suite.client.workflow.getHandle(id).cancel();
  });

  it('more excluded rows than the tier allows stops certification (ExcessiveExclusions) naming the fraction, the limit and the top reasons', async () => {
    const bad = Array.from({ length: 80 }, (_, i) => withRadius(i + 1, i % 4 === 0 ? 'NaN' : '0x1A'));
    const file = writeCsv('excessive.csv', [...realLines, ...bad]);
    const id = await cliStart(model('excessive'), file, ['--schema', SCHEMA]);
    const f = await failureOf(id);
    expect(f.type).toBe('ExcessiveExclusions');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toBe(
      "12.33% of rows excluded (80 of 649), above the risk tier's limit of 10.00%; top reasons: radius_mean: not a number (hexadecimal) (60 rows); radius_mean: not a number (not-finite) (20 rows)",
    );
    const steps = await suite.db.selectFrom('dataset_versions').select('manifest_digest').where('workflow_id', '=', id).execute();
    expect(steps).toHaveLength(0); // nothing certified
  });
});

describe('jobs (real stack)', () => {
  it("the trainer's environment holds no credential, database URL or Temporal address", async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers, { modelName: model('env'), training: { epochs: 200_000, seed: 7 } });
    const starts = path.join(env.FACTORY_HOME, 'jobs', workflowId, 'train', 'starts.log');
    for (let i = 0; i < 1200 && !fs.existsSync(starts); i++) await sleep(100);
    const pid = Number(/pid=(\d+)/.exec(fs.readFileSync(starts, 'utf8'))![1]);
    // The wrapper shell and the Python process it started, as the kernel sees them.
    let python: number | undefined;
    for (let i = 0; i < 100 && !python; i++, await sleep(100))
      python = Number(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]) || undefined;
    for (const p of [pid, python!]) {
      const environ = fs.readFileSync(`/proc/${p}/environ`, 'utf8');
      const keys = environ
        .split('\0')
        .filter(Boolean)
        .map((kv) => kv.slice(0, kv.indexOf('=')));
      expect(keys).toContain('JOB_DIR');
      expect(keys.filter((k) => /^(AWS_|DATABASE_URL|TEMPORAL_|S3_|FACTORY_)/.test(k))).toEqual([]);
      expect(environ).not.toContain(AWS_SECRET);
      expect(environ).not.toContain(env.DATABASE_URL ?? 'postgres://');
    }
    await suite.client.workflow.getHandle(workflowId).cancel();
    for (let i = 0; i < 200 && isAlive(pid); i++) await sleep(100);
    expect(isAlive(pid)).toBe(false);
  });
});

/** Peak resident memory of a process so far (VmHWM), in MiB. */
function peakMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

async function waitForFile(file: string, timeoutMs = 240_000): Promise<string> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50)) if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
  throw new Error(`${file} never appeared`);
}

/** The processes of a job: the wrapper shell (its process group leader) and what it started. */
function jobPids(pid: number): number[] {
  try {
    return [pid, ...fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number)];
  } catch {
    return [pid];
  }
}

describe('a larger file (20 MB, real workers of its own)', () => {
  // Own workers, so the test knows the control worker's pid and reads its memory.
  const big = new IsolatedWorkers({ AWS_ACCESS_KEY_ID: 'factory-local', AWS_SECRET_ACCESS_KEY: AWS_SECRET });
  const file = path.join(dir, 'wdbc-20mb.csv');
  let controlPid = 0;
  let generated = { rows: 0, bad: 0, bytes: 0 };
  beforeAll(async () => {
    generated = await writeSyntheticWdbc(file, 20 * 1024 * 1024, { badEvery: 1000 });
    controlPid = (await big.start('control')).pid!;
    await Promise.all([big.start('gpu-onprem'), big.start('serving')]);
  });
  afterAll(() => big.stopAll());

  it('is certified with bounded memory growth; the evaluator heartbeats through a stall longer than the heartbeat timeout and finishes', async () => {
    const before = peakMiB(controlPid);
    const { workflowId } = await startTestLifecycle(suite.client, big, {
      modelName: model('big'),
      datasetPath: file,
      schemaPath: SCHEMA,
      training: { epochs: 20, seed: 7 },
    });
    await waitForStatus(suite.client, workflowId, (s) => s.stage !== 'ingest', 240_000);
    const growth = peakMiB(controlPid) - before;
    // Whole-file reading held the file several times over (bytes, string, lines, cells): ~10× its size.
    // Streaming holds a record and two 16 MiB upload parts at a time (bench:large: the same peak for
    // 50 and 200 MB); the rest is the workflow's own state and GC slack.
    expect(growth).toBeLessThan(150);

    const starts = path.join(env.FACTORY_HOME, 'jobs', workflowId, 'evaluate', 'starts.log');
    const pid = Number(/pid=(\d+)/.exec(await waitForFile(starts))![1]);
    // Freeze the evaluator for longer than the 10 s heartbeat timeout: the activity keeps heartbeating
    // for it, so the attempt survives, and the evaluation then finishes.
    process.kill(-pid, 'SIGSTOP');
    await sleep(13_000);
    process.kill(-pid, 'SIGCONT');
    await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval', 240_000);
    const events = (await suite.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    expect(events.filter((e) => e.activityTaskTimedOutEventAttributes)).toEqual([]);
    expect(events.flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt] : [])).every((a) => a === 1)).toBe(
      true,
    );
    const trace = JSON.parse((await factoryCli(['trace', model('big'), '--json'])).stdout) as ModelTrace;
    expect(trace.data).toMatchObject({ rowsTotal: generated.rows, rowsExcluded: generated.bad });
    expect(trace.data.exclusions?.[0]?.reason).toBe('radius_mean="0x1A" is not a number (hexadecimal)');
    await suite.client.workflow.getHandle(workflowId).cancel();
  });

  it("cancelling the lifecycle during evaluation kills the evaluator's process group", async () => {
    const { workflowId } = await startTestLifecycle(suite.client, big, {
      modelName: model('bigcancel'),
      datasetPath: file,
      schemaPath: SCHEMA,
      training: { epochs: 20, seed: 7 },
    });
    const starts = path.join(env.FACTORY_HOME, 'jobs', workflowId, 'evaluate', 'starts.log');
    const pid = Number(/pid=(\d+)/.exec(await waitForFile(starts))![1]);
    const pids = jobPids(pid);
    // Frozen, so it is certainly still evaluating when the cancellation arrives.
    process.kill(-pid, 'SIGSTOP');
    const handle = suite.client.workflow.getHandle(workflowId);
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    for (let i = 0; i < 300 && pids.some(isAlive); i++) await sleep(100);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(fs.existsSync(path.join(path.dirname(starts), 'metrics.json'))).toBe(false);
  });
});
