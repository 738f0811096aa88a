import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { projectRoot } from '../src/config/env.ts';
import { isAlive, logTail } from '../src/dev/process.ts';
import { venvPaths } from '../src/dev/venv.ts';
import { MAX_SCHEMA_BYTES, inputLanes, readInput } from '../src/datasets/open-input.ts';
import { InputRefused } from '../src/datasets/lanes.ts';
import { jobEnv } from '../src/jobs/child-env.ts';
import { bucket } from '../src/storage/s3.ts';
import { getBytes, putOnce, sha256Digest } from '../src/storage/objects.ts';
import { downloadToFile } from '../src/storage/stream.ts';
import { activityDeps } from './deps.ts';

export interface TrainInput {
  workflowId: string;
  modelName: string;
  certifiedKey: string;
  schemaPath: string;
  epochs: number;
  seed: number;
  imageDigest: string;
}

export interface TrainedModel {
  artifactDigest: string;
  artifactKey: string;
  artifactUri: string;
  trainerMetrics: Record<string, number>;
  environment: Record<string, unknown>;
  jobDir: string;
  /** How the job was found by this attempt: started, re-attached to a running one, or already finished. */
  attach: 'started' | 'reattached' | 'finished-earlier';
}

/** What the launcher heartbeats: enough for a retried attempt on another worker to find the job. */
interface JobHandle {
  pid: number;
  jobDir: string;
}

function jobsDirFor(workflowId: string): string {
  const { env } = activityDeps();
  return path.join(env.FACTORY_HOME, 'jobs', workflowId.replace(/[^\w.-]/g, '_'));
}

/** The job's process is still ours to wait for: alive and started for this job directory. */
function jobRunning(handle: Partial<JobHandle> | undefined): handle is JobHandle {
  if (!handle || typeof handle.pid !== 'number' || typeof handle.jobDir !== 'string' || !isAlive(handle.pid)) return false;
  try {
    return fs.readFileSync(`/proc/${handle.pid}/cmdline`, 'utf8').includes(handle.jobDir);
  } catch {
    return false;
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/** Heartbeats at most once a second through a long phase (a download, an upload). */
function heartbeater(): (details: unknown) => void {
  let last = 0;
  return (details) => {
    if (Date.now() - last < 1_000) return;
    last = Date.now();
    Context.current().heartbeat(details);
  };
}

/**
 * Streams the certified file to the job's directory, heartbeating, and checks it against the digest
 * its key is named by (`<dataset>/<sha256>/data.csv`): a changed file is refused.
 */
async function fetchCertified(certifiedKey: string, file: string): Promise<void> {
  const { env, s3 } = activityDeps();
  const beat = heartbeater();
  const got = await downloadToFile(s3, bucket(env, 'certified'), certifiedKey, file, (bytes) => beat({ phase: 'download', bytes }));
  const expected = certifiedKey.split('/').at(-2);
  if (got.sha256 !== `sha256:${expected}`) {
    fs.rmSync(file, { force: true });
    throw ApplicationFailure.nonRetryable(`certified file ${certifiedKey} does not match the digest it is named by`, 'TamperedArtifact');
  }
}

/**
 * Copies the dataset's schema into the job's directory through the same input lane as ingest (an
 * allowed root or the landing bucket): the job reads only files its launcher put there.
 */
async function fetchSchema(schemaPath: string, file: string): Promise<string> {
  const { env, s3 } = activityDeps();
  try {
    fs.writeFileSync(file, await readInput(s3, schemaPath, 'schema', inputLanes(env), MAX_SCHEMA_BYTES));
  } catch (err) {
    if (err instanceof InputRefused) throw ApplicationFailure.nonRetryable(err.message, err.type);
    throw err;
  }
  return file;
}

/**
 * Starts a Python job as its own process group with a scrubbed environment (no credentials), so it
 * can be killed as a whole and a crashed worker does not take it down. A shell wrapper records the
 * exit status, which a later attempt reads if it was not the parent.
 */
function startJob(jobDir: string, logName: string, args: string[]): JobHandle {
  const venv = venvPaths(activityDeps().env);
  const log = fs.openSync(path.join(jobDir, logName), 'a');
  const child = spawn('bash', ['-c', '"$@"; echo $? > "$JOB_DIR/exit_code"', 'job', venv.python, '-W', 'ignore', ...args], {
    detached: true,
    stdio: ['ignore', log, log],
    env: jobEnv(process.env, jobDir),
    cwd: jobDir,
  });
  fs.closeSync(log);
  child.unref();
  fs.appendFileSync(path.join(jobDir, 'starts.log'), `${new Date().toISOString()} pid=${child.pid} attempt=${Context.current().info.attempt}\n`);
  const handle = { pid: child.pid!, jobDir };
  fs.writeFileSync(path.join(jobDir, 'job.json'), JSON.stringify(handle));
  return handle;
}

/**
 * The job an earlier attempt started: from its heartbeat or, when heartbeats were throttled away
 * before the worker died (the SDK sends one every 8 s here), from job.json in the job's directory.
 * jobRunning() then checks the pid still runs this job, so a reused pid is never taken for it.
 */
function previousJob(jobDir: string): Partial<JobHandle> | undefined {
  const details = Context.current().info.heartbeatDetails as Partial<JobHandle> | undefined;
  if (typeof details?.pid === 'number') return details;
  try {
    return JSON.parse(fs.readFileSync(path.join(jobDir, 'job.json'), 'utf8')) as Partial<JobHandle>;
  } catch {
    return undefined;
  }
}

/**
 * Waits for a job, heartbeating its handle every second. Whenever this attempt ends before the job
 * (cancellation, a timeout, the worker shutting down, any error here) the job's process group is
 * killed; only a worker that dies outright leaves it running, for the next attempt to find.
 */
async function supervise(job: JobHandle): Promise<void> {
  const ctx = Context.current();
  const kill = () => killGroup(job.pid);
  ctx.cancellationSignal.addEventListener('abort', kill);
  let ended = false;
  try {
    while (jobRunning(job)) {
      ctx.heartbeat(job);
      await Promise.race([sleep(1_000), ctx.cancelled.catch(() => undefined)]);
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
    }
    ended = true;
  } finally {
    ctx.cancellationSignal.removeEventListener('abort', kill);
    if (!ended) kill();
  }
}

/** A job that refused its data (refused.json, exit 3) fails for good: the same file fails the same way. */
function throwIfRefused(dir: string): void {
  const file = path.join(dir, 'refused.json');
  if (!fs.existsSync(file)) return;
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as { type?: string; message?: string };
  throw ApplicationFailure.nonRetryable(`the job refused the certified file: ${String(r.message ?? 'no reason given').slice(0, 500)}`, 'CertifiedDataRefused');
}

function exitCode(dir: string): string {
  const f = path.join(dir, 'exit_code');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim() : 'unknown';
}

/**
 * Launches (or re-attaches to) the training job for this lifecycle and returns when it has ended.
 * Heartbeats through the download, the run and the upload; cancellation kills the job's process group.
 */
export async function trainModel(input: TrainInput): Promise<TrainedModel> {
  const ctx = Context.current();
  const { env, s3 } = activityDeps();
  const jobDir = path.join(jobsDirFor(input.workflowId), 'train');
  fs.mkdirSync(jobDir, { recursive: true });
  const resultFile = path.join(jobDir, 'result.json');
  const previous = previousJob(jobDir);
  const dataFile = path.join(jobDir, 'data.csv');

  let handle: JobHandle | undefined;
  let attach: TrainedModel['attach'];
  if (fs.existsSync(resultFile)) {
    attach = 'finished-earlier';
  } else if (jobRunning(previous)) {
    handle = previous;
    attach = 'reattached';
    ctx.log.info('re-attaching to the running training job', { pid: previous.pid });
  } else {
    for (const f of ['exit_code', 'refused.json']) fs.rmSync(path.join(jobDir, f), { force: true });
    const schemaFile = await fetchSchema(input.schemaPath, path.join(jobDir, 'schema.json'));
    await fetchCertified(input.certifiedKey, dataFile);
    handle = startJob(jobDir, 'train.log', [
      path.join(projectRoot, 'trainers', 'train.py'),
      '--data', dataFile,
      '--schema', schemaFile,
      '--out', jobDir,
      '--epochs', String(input.epochs),
      '--seed', String(input.seed),
      '--image-digest', input.imageDigest,
    ]);
    attach = 'started';
  }

  if (handle) await supervise(handle);

  throwIfRefused(jobDir);
  if (!fs.existsSync(resultFile)) {
    throw ApplicationFailure.retryable(`training job failed (exit ${exitCode(jobDir)}):\n${logTail(path.join(jobDir, 'train.log'), 15)}`, 'TrainingFailed');
  }
  fs.rmSync(dataFile, { force: true }); // the certified bucket keeps it; a 200 MB copy per lifecycle need not stay
  const result = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as { metrics: Record<string, number>; environment: Record<string, unknown> };
  const onnx = fs.readFileSync(path.join(jobDir, 'model.onnx'));
  const digest = sha256Digest(onnx);
  const artifactKey = `models/${input.modelName}/${digest.slice(7)}/model.onnx`;
  ctx.heartbeat({ phase: 'upload' });
  const put = await putOnce(s3, bucket(env, 'artifacts'), artifactKey, onnx, { contentType: 'application/octet-stream' });
  await putOnce(s3, bucket(env, 'evidence'), `${artifactKey}.environment.json`, JSON.stringify(result.environment), { contentType: 'application/json' });
  return { artifactDigest: digest, artifactKey, artifactUri: put.uri, trainerMetrics: result.metrics, environment: result.environment, jobDir, attach };
}

/**
 * Independent evaluation of the stored artifact (not the trainer's own numbers) on the held-out
 * split. The artifact's digest is checked first: a changed file is refused. The evaluator runs as a
 * detached process group like the trainer, heartbeated, and killed when this attempt ends; an
 * evaluator left by an earlier attempt on a crashed worker is killed before a new one starts.
 */
export async function evaluateModel(input: {
  workflowId: string;
  artifactKey: string;
  artifactDigest: string;
  certifiedKey: string;
  schemaPath: string;
  seed: number;
}): Promise<Record<string, number>> {
  const ctx = Context.current();
  const { env, s3 } = activityDeps();
  const dir = path.join(jobsDirFor(input.workflowId), 'evaluate');
  fs.mkdirSync(dir, { recursive: true });
  const previous = previousJob(dir);
  if (jobRunning(previous)) {
    ctx.log.warn('killing the evaluator left by an earlier attempt', { pid: previous.pid });
    killGroup(previous.pid);
    for (let i = 0; i < 50 && isAlive(previous.pid); i++) await sleep(100);
  }
  for (const f of ['exit_code', 'refused.json', 'metrics.json']) fs.rmSync(path.join(dir, f), { force: true });

  ctx.heartbeat({ phase: 'download' });
  const onnx = await getBytes(s3, bucket(env, 'artifacts'), input.artifactKey);
  if (sha256Digest(onnx) !== input.artifactDigest) {
    throw ApplicationFailure.nonRetryable(`artifact ${input.artifactKey} does not match its digest ${input.artifactDigest}`, 'TamperedArtifact');
  }
  fs.writeFileSync(path.join(dir, 'model.onnx'), onnx);
  const schemaFile = await fetchSchema(input.schemaPath, path.join(dir, 'schema.json'));
  const dataFile = path.join(dir, 'data.csv');
  await fetchCertified(input.certifiedKey, dataFile);
  const job = startJob(dir, 'evaluate.log', [
    path.join(projectRoot, 'trainers', 'evaluate.py'),
    '--model', path.join(dir, 'model.onnx'),
    '--data', dataFile,
    '--schema', schemaFile,
    '--seed', String(input.seed),
    '--out', dir,
  ]);
  await supervise(job);
  throwIfRefused(dir);
  const metricsFile = path.join(dir, 'metrics.json');
  if (!fs.existsSync(metricsFile)) {
    throw ApplicationFailure.retryable(`evaluation failed (exit ${exitCode(dir)}):\n${logTail(path.join(dir, 'evaluate.log'), 15)}`, 'EvaluationFailed');
  }
  fs.rmSync(dataFile, { force: true });
  return JSON.parse(fs.readFileSync(metricsFile, 'utf8')) as Record<string, number>;
}
