import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { projectRoot } from '../src/config/env.ts';
import { isAlive, logTail } from '../src/dev/process.ts';
import { venvPaths } from '../src/dev/venv.ts';
import { bucket } from '../src/storage/s3.ts';
import { getBytes, putOnce, sha256Digest } from '../src/storage/objects.ts';
import { activityDeps } from './deps.ts';

const run = promisify(execFile);

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

function jobDirFor(workflowId: string): string {
  const { env } = activityDeps();
  return path.join(env.FACTORY_HOME, 'jobs', workflowId.replace(/[^\w.-]/g, '_'), 'train');
}

/** The job's process is still ours to wait for: alive and started for this job directory. */
function jobRunning(handle: JobHandle): boolean {
  if (!isAlive(handle.pid)) return false;
  try {
    return fs.readFileSync(`/proc/${handle.pid}/cmdline`, 'utf8').includes(handle.jobDir);
  } catch {
    return false;
  }
}

/**
 * Starts the trainer as its own process group, so it outlives a crashed worker and can be killed
 * as a whole. A shell wrapper records the exit status, which a later attempt reads if it was not
 * the parent.
 */
function startJob(input: TrainInput, jobDir: string, dataFile: string): JobHandle {
  const venv = venvPaths(activityDeps().env);
  const args = [
    path.join(projectRoot, 'trainers', 'train.py'),
    '--data', dataFile,
    '--schema', input.schemaPath,
    '--out', jobDir,
    '--epochs', String(input.epochs),
    '--seed', String(input.seed),
    '--image-digest', input.imageDigest,
  ];
  const log = fs.openSync(path.join(jobDir, 'train.log'), 'a');
  const child = spawn('bash', ['-c', '"$@"; echo $? > "$JOB_DIR/exit_code"', 'job', venv.python, '-W', 'ignore', ...args], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, JOB_DIR: jobDir },
  });
  fs.closeSync(log);
  child.unref();
  fs.appendFileSync(path.join(jobDir, 'starts.log'), `${new Date().toISOString()} pid=${child.pid} attempt=${Context.current().info.attempt}\n`);
  return { pid: child.pid!, jobDir };
}

/**
 * Launches (or re-attaches to) the training job for this lifecycle and returns when it has ended.
 * Heartbeats the job handle every second; cancellation kills the job's process group.
 */
export async function trainModel(input: TrainInput): Promise<TrainedModel> {
  const ctx = Context.current();
  const { env, s3 } = activityDeps();
  const jobDir = jobDirFor(input.workflowId);
  fs.mkdirSync(jobDir, { recursive: true });
  const resultFile = path.join(jobDir, 'result.json');
  const previous = ctx.info.heartbeatDetails as JobHandle | undefined;

  let handle: JobHandle | undefined;
  let attach: TrainedModel['attach'];
  if (fs.existsSync(resultFile)) {
    attach = 'finished-earlier';
  } else if (previous && jobRunning(previous)) {
    handle = previous;
    attach = 'reattached';
    ctx.log.info('re-attaching to the running training job', { pid: previous.pid });
  } else {
    fs.rmSync(path.join(jobDir, 'exit_code'), { force: true });
    const dataFile = path.join(jobDir, 'data.csv');
    fs.writeFileSync(dataFile, await getBytes(s3, bucket(env, 'certified'), input.certifiedKey));
    handle = startJob(input, jobDir, dataFile);
    attach = 'started';
  }

  if (handle) {
    const job = handle;
    const kill = () => {
      try {
        process.kill(-job.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    ctx.cancellationSignal.addEventListener('abort', kill);
    try {
      while (jobRunning(job)) {
        ctx.heartbeat(job);
        await Promise.race([sleep(1_000), ctx.cancelled.catch(() => undefined)]);
        if (ctx.cancellationSignal.aborted) {
          kill();
          throw ctx.cancellationSignal.reason ?? new Error('cancelled');
        }
      }
    } finally {
      ctx.cancellationSignal.removeEventListener('abort', kill);
    }
  }

  if (!fs.existsSync(resultFile)) {
    const code = fs.existsSync(path.join(jobDir, 'exit_code')) ? fs.readFileSync(path.join(jobDir, 'exit_code'), 'utf8').trim() : 'unknown';
    throw ApplicationFailure.retryable(`training job failed (exit ${code}):\n${logTail(path.join(jobDir, 'train.log'), 15)}`, 'TrainingFailed');
  }
  const result = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as { metrics: Record<string, number>; environment: Record<string, unknown> };
  const onnx = fs.readFileSync(path.join(jobDir, 'model.onnx'));
  const digest = sha256Digest(onnx);
  const artifactKey = `models/${input.modelName}/${digest.slice(7)}/model.onnx`;
  const put = await putOnce(s3, bucket(env, 'artifacts'), artifactKey, onnx, { contentType: 'application/octet-stream' });
  await putOnce(s3, bucket(env, 'evidence'), `${artifactKey}.environment.json`, JSON.stringify(result.environment), { contentType: 'application/json' });
  return { artifactDigest: digest, artifactKey, artifactUri: put.uri, trainerMetrics: result.metrics, environment: result.environment, jobDir, attach };
}

/**
 * Independent evaluation of the stored artifact (not the trainer's own numbers) on the held-out
 * split. The artifact's digest is checked first: a changed file is refused.
 */
export async function evaluateModel(input: {
  workflowId: string;
  artifactKey: string;
  artifactDigest: string;
  certifiedKey: string;
  schemaPath: string;
  seed: number;
}): Promise<Record<string, number>> {
  const { env, s3 } = activityDeps();
  const dir = path.join(path.dirname(jobDirFor(input.workflowId)), 'evaluate');
  fs.mkdirSync(dir, { recursive: true });
  const onnx = await getBytes(s3, bucket(env, 'artifacts'), input.artifactKey);
  if (sha256Digest(onnx) !== input.artifactDigest) {
    throw ApplicationFailure.nonRetryable(`artifact ${input.artifactKey} does not match its digest ${input.artifactDigest}`, 'TamperedArtifact');
  }
  fs.writeFileSync(path.join(dir, 'model.onnx'), onnx);
  fs.writeFileSync(path.join(dir, 'data.csv'), await getBytes(s3, bucket(env, 'certified'), input.certifiedKey));
  const { stdout } = await run(venvPaths(env).python, [
    path.join(projectRoot, 'trainers', 'evaluate.py'),
    '--model', path.join(dir, 'model.onnx'),
    '--data', path.join(dir, 'data.csv'),
    '--schema', input.schemaPath,
    '--seed', String(input.seed),
  ]);
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>;
}
