import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { projectRoot } from '../src/config/env.ts';
import { isAlive, logTail } from '../src/process/records.ts';
import { venvPaths } from '../src/config/venv.ts';
import { MAX_SCHEMA_BYTES, inputLanes, readInput } from '../src/datasets/open-input.ts';
import { InputRefused } from '../src/datasets/lanes.ts';
import { type LeaseOwner, abortAction, killGroup, renewLease, spawnJob, supersededBy, watchJobExit } from '../src/jobs/job-process.ts';
import * as slurm from '../src/jobs/slurm.ts';
import * as z from 'zod';
import { bucket } from '../src/storage/s3.ts';
import { trainingDistributionSchema } from '../src/monitoring/distribution.ts';
import { retainUntilInForce } from '../src/policy/pack.ts';
import { getBytes, putOnce, sha256Digest } from '../src/storage/objects.ts';
import { downloadToFile } from '../src/storage/stream.ts';
import { type DatasetSchema, datasetSchemaSchema } from '../src/datasets/schema.ts';
import { customFacet, datasetRef, modelColumnLineage } from '../src/lineage/openlineage.ts';
import { activityDeps } from './deps.ts';
import { withLineage } from './lineage.ts';

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
  /**
   * What the trainer measured in its own interpreter (trainers/train.py): the training environment
   * (interpreter and installed packages), kept in the evidence bucket, and its own source files. Absent
   * when the job was started by a trainer older than the measurement.
   */
  measured?: TrainingMeasurements;
  /** How the job was found by this attempt: started, re-attached to a running one, or already finished. */
  attach: 'started' | 'reattached' | 'finished-earlier';
}

/** Where a Slurm job ran and how it ended (`sacct -c`): added to the environment record as `scheduler`. */
export interface SchedulerRecord extends slurm.SlurmAccounting {
  launcher: 'slurm';
  gres: string | null;
}

export interface TrainingMeasurements {
  environment: { uri: string; digest: string; python: string; packages: number };
  trainerCode: { digest: string; files: Array<{ path: string; sha256: string }> };
}

const measuredEnvironmentSchema = z.object({
  python: z.object({ implementation: z.string().max(100), version: z.string().max(100) }),
  packages: z.array(z.object({ name: z.string().max(300), version: z.string().max(300) })).max(100_000),
});
const trainerCodeSchema = z.object({
  files: z
    .array(z.object({ path: z.string().max(1_000), sha256: z.string().regex(/^[0-9a-f]{64}$/) }))
    .min(1)
    .max(1_000),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});
/** The measured environment file is a list of packages: a few KiB; anything past this is not one. */
const MAX_MEASURED_BYTES = 4 * 1024 * 1024;

/**
 * The trainer's measurements, read from its job directory; the environment's exact bytes go to the
 * evidence bucket (locked), so its digest can be recomputed by anyone from the object.
 */
async function keepMeasurements(jobDir: string, artifactKey: string): Promise<TrainingMeasurements | undefined> {
  const envFile = path.join(jobDir, 'environment-measured.json');
  const codeFile = path.join(jobDir, 'trainer-code.json');
  if (!fs.existsSync(envFile) || !fs.existsSync(codeFile)) return undefined;
  if (fs.statSync(envFile).size > MAX_MEASURED_BYTES || fs.statSync(codeFile).size > MAX_MEASURED_BYTES) {
    throw ApplicationFailure.nonRetryable('the trainer wrote measurements larger than 4 MiB: refused', 'MeasurementRefused');
  }
  const bytes = fs.readFileSync(envFile);
  const env = measuredEnvironmentSchema.safeParse(JSON.parse(bytes.toString('utf8')));
  const code = trainerCodeSchema.safeParse(JSON.parse(fs.readFileSync(codeFile, 'utf8')));
  if (!env.success || !code.success) throw ApplicationFailure.nonRetryable('the trainer wrote measurements of an unknown shape: refused', 'MeasurementRefused');
  const { env: config, s3 } = activityDeps();
  const put = await putOnce(s3, bucket(config, 'evidence'), `${artifactKey}.environment-measured.json`, bytes, {
    contentType: 'application/json',
    retainUntil: retainUntilInForce('artifacts'),
  });
  return {
    environment: {
      uri: put.uri,
      digest: put.digest,
      python: `${env.data.python.implementation} ${env.data.python.version}`,
      packages: env.data.packages.length,
    },
    trainerCode: code.data,
  };
}

/**
 * The trainer's training-distribution.json (per feature the decile edges of the training split and
 * their proportions, and the model's score distribution), checked against its schema and stored
 * under Object Lock in the evidence bucket; its URI and digest go into the version's environment.
 * Absent (a trainer before this change): undefined, and the version is monitored without drift.
 */
async function keepDistribution(jobDir: string, artifactKey: string): Promise<{ uri: string; digest: string } | undefined> {
  const file = path.join(jobDir, 'training-distribution.json');
  if (!fs.existsSync(file)) return undefined;
  if (fs.statSync(file).size > MAX_MEASURED_BYTES)
    throw ApplicationFailure.nonRetryable('the trainer wrote a training distribution larger than 4 MiB: refused', 'MeasurementRefused');
  const bytes = fs.readFileSync(file);
  const parsed = trainingDistributionSchema.safeParse(JSON.parse(bytes.toString('utf8')));
  if (!parsed.success)
    throw ApplicationFailure.nonRetryable(
      `the trainer wrote a training distribution of an unknown shape: ${parsed.error.issues[0]?.message}`,
      'MeasurementRefused',
    );
  const { env: config, s3 } = activityDeps();
  const put = await putOnce(s3, bucket(config, 'evidence'), `${artifactKey}.training-distribution.json`, bytes, {
    contentType: 'application/json',
    retainUntil: retainUntilInForce('artifacts'),
  });
  return { uri: put.uri, digest: put.digest };
}

/**
 * What the launcher heartbeats (and writes to job.json): enough for a retried attempt on another
 * worker to find the job. A local job has a pid, a Slurm job its job id.
 */
interface JobHandle {
  pid?: number;
  slurmJobId?: number;
  jobDir: string;
  /** The lifecycle run that started it (absent in job.json written before runs were recorded). */
  runId?: string;
}

/**
 * A job that ends without its result this many times fails the activity for good: a broken trainer
 * or data that crashes it is not re-run until the attempts run out (worker restarts and crashes, which
 * re-attach, do not count).
 */
export const MAX_FAILED_JOB_RUNS = 3;

function jobsDirFor(workflowId: string): string {
  const { env } = activityDeps();
  return path.join(env.FACTORY_HOME, 'jobs', workflowId.replace(/[^\w.-]/g, '_'));
}

/**
 * The job is still ours to wait for: a local process alive and started for this job directory, or a
 * Slurm job still active whose working directory is this job's (a reused id is never taken for it).
 * A Slurm job whose wrapper has written its exit status has ended, whatever squeue says for a moment.
 */
async function jobRunning(handle: Partial<JobHandle> | undefined): Promise<boolean> {
  if (!handle || typeof handle.jobDir !== 'string') return false;
  if (typeof handle.slurmJobId === 'number') {
    if (fs.existsSync(path.join(handle.jobDir, 'exit_code'))) return false;
    const got = await slurm.jobState(handle.slurmJobId);
    return got !== undefined && slurm.ACTIVE_STATES.has(got.state) && got.workDir === handle.jobDir;
  }
  if (typeof handle.pid !== 'number' || !isAlive(handle.pid)) return false;
  try {
    return fs.readFileSync(`/proc/${handle.pid}/cmdline`, 'utf8').includes(handle.jobDir);
  } catch {
    return false;
  }
}

/** Stops the job: its process group, or `scancel` for a Slurm job. */
async function killJob(handle: Partial<JobHandle>): Promise<void> {
  if (typeof handle.slurmJobId === 'number') await slurm.cancel(handle.slurmJobId);
  else if (typeof handle.pid === 'number') killGroup(handle.pid);
}

/** Kills the job and waits (5 s at most) until it no longer runs. */
async function killAndWait(handle: Partial<JobHandle>): Promise<void> {
  await killJob(handle);
  for (let i = 0; i < 50 && (await jobRunning(handle)); i++) await sleep(100);
}

/** How the job is named in messages: `pid 123` or `Slurm job 45`. */
function describeJob(handle: Partial<JobHandle>): string {
  return typeof handle.slurmJobId === 'number' ? `Slurm job ${handle.slurmJobId}` : `pid ${handle.pid}`;
}

/** The lifecycle run this attempt works for. */
function currentRunId(): string {
  return Context.current().info.workflowExecution?.runId ?? '';
}

function leaseOwner(): LeaseOwner {
  return { runId: currentRunId(), attempt: Context.current().info.attempt };
}

/** How long (about, in seconds) a launcher keeps asking a scheduler that does not answer before its attempt fails. */
const SCHEDULER_PATIENCE_SECONDS = 120;

/** Throws the abort's reason when this attempt was cancelled before it started a job (nothing to leave or kill). */
function throwIfAborted(): void {
  const signal = Context.current().cancellationSignal;
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
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
 * Starts a Python job with a scrubbed environment (no credentials), so that neither a crashed nor a
 * restarting worker takes it down: as its own process group (FACTORY_JOB_LAUNCHER=local), or as a
 * Slurm batch job (slurm) asking for the configured partition and GRES. Its wrapper
 * (src/jobs/job-process.ts) records the exit status, which a later attempt reads if it was not the
 * parent, and stops the job when no launcher has renewed its lease for ORPHAN_AFTER_SECONDS.
 * A request Slurm refuses (a GRES no node has) fails the activity for good, saying what to fix.
 */
async function startJob(jobDir: string, logName: string, args: string[]): Promise<JobHandle> {
  throwIfAborted();
  const { env } = activityDeps();
  const venv = venvPaths(env);
  const owner = leaseOwner();
  const job = { jobDir, logFile: path.join(jobDir, logName), command: venv.python, args: ['-W', 'ignore', ...args], owner };
  let handle: JobHandle;
  if (env.FACTORY_JOB_LAUNCHER === 'slurm') {
    let jobId: number;
    try {
      jobId = await slurm.submit({ ...job, jobName: `factory-${path.basename(jobDir)}`, request: slurmRequest() });
    } catch (err) {
      if (err instanceof slurm.SlurmRequestRefused) throw ApplicationFailure.nonRetryable(err.message, 'SlurmRequestRefused');
      throw err;
    }
    handle = { slurmJobId: jobId, jobDir, runId: owner.runId };
    fs.appendFileSync(path.join(jobDir, 'starts.log'), `${new Date().toISOString()} slurm=${jobId} attempt=${owner.attempt}\n`);
  } else {
    const pid = spawnJob(job);
    handle = { pid, jobDir, runId: owner.runId };
    fs.appendFileSync(path.join(jobDir, 'starts.log'), `${new Date().toISOString()} pid=${pid} attempt=${owner.attempt}\n`);
  }
  fs.writeFileSync(path.join(jobDir, 'job.json'), JSON.stringify(handle));
  return handle;
}

function slurmRequest(): slurm.SlurmRequest {
  const { env } = activityDeps();
  return {
    ...(env.FACTORY_SLURM_PARTITION ? { partition: env.FACTORY_SLURM_PARTITION } : {}),
    ...(env.FACTORY_SLURM_GRES ? { gres: env.FACTORY_SLURM_GRES } : {}),
    ...(env.FACTORY_SLURM_TIME_LIMIT ? { timeLimit: env.FACTORY_SLURM_TIME_LIMIT } : {}),
  };
}

/**
 * After a Slurm job has ended: its accounting from `sacct -c` (the jobcomp record may lag the end by
 * a moment), kept in the job directory; and, when the wrapper recorded no exit status (cancelled,
 * killed by Slurm at its time limit, its node lost), Slurm's state and exit code as the job's.
 */
async function collectSlurmJob(handle: JobHandle): Promise<SchedulerRecord | undefined> {
  if (typeof handle.slurmJobId !== 'number') return undefined;
  let acct: slurm.SlurmAccounting | undefined;
  for (let i = 0; i < 50; i++) {
    acct = await slurm.accounting(handle.slurmJobId, handle.jobDir);
    if (acct && !slurm.ACTIVE_STATES.has(acct.state)) break;
    await sleep(100);
  }
  if (!acct) return undefined;
  const record: SchedulerRecord = { launcher: 'slurm', ...acct, gres: activityDeps().env.FACTORY_SLURM_GRES ?? null };
  fs.writeFileSync(path.join(handle.jobDir, 'accounting.json'), JSON.stringify(record));
  const exitFile = path.join(handle.jobDir, 'exit_code');
  if (!fs.existsSync(exitFile)) fs.writeFileSync(exitFile, `${acct.exitCode} (Slurm: ${acct.state})`);
  return record;
}

/** The accounting an earlier attempt collected for this job directory's Slurm job. */
function keptSchedulerRecord(jobDir: string): SchedulerRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(jobDir, 'accounting.json'), 'utf8')) as SchedulerRecord;
  } catch {
    return undefined;
  }
}

/**
 * The job an earlier attempt started: from its heartbeat or, when heartbeats were throttled away
 * before the worker died (the SDK sends one every 8 s here), from job.json in the job's directory.
 * jobRunning() then checks the pid still runs this job, so a reused pid is never taken for it.
 */
function previousJob(jobDir: string): Partial<JobHandle> | undefined {
  const details = Context.current().info.heartbeatDetails as Partial<JobHandle> | undefined;
  if (typeof details?.pid === 'number' || typeof details?.slurmJobId === 'number') return details;
  try {
    return JSON.parse(fs.readFileSync(path.join(jobDir, 'job.json'), 'utf8')) as Partial<JobHandle>;
  } catch {
    return undefined;
  }
}

/**
 * Waits for a job, heartbeating its handle and renewing its lease every second. When this attempt ends
 * before the job, the cause decides (abortAction): a cancelled lifecycle, a reset, an error here kill
 * the job's process group; a worker shutting down (`onShutdown: 'detach'`) leaves the job running,
 * heartbeats its handle one last time and fails the attempt as `WorkerShutdown`, so Temporal retries it
 * on the next worker, which re-attaches. A worker that dies outright leaves it running likewise.
 */
async function supervise(job: JobHandle, onShutdown: 'detach' | 'kill'): Promise<void> {
  const ctx = Context.current();
  const me = leaseOwner();
  const actionOnAbort = () => {
    const action = abortAction(ctx.cancellationSignal.reason, ctx.cancellationDetails);
    return action === 'detach' && onShutdown === 'kill' ? 'kill' : action;
  };
  // Killed at once on the abort, not at the loop's next turn: a cancelled lifecycle frees its GPU now.
  const onAbort = () => {
    const action = actionOnAbort();
    if (action === 'kill' || (action === 'kill-if-owner' && supersededBy(job.jobDir, me) === undefined)) {
      killJob(job).catch((err: unknown) => ctx.log.error('could not stop the job', { job: describeJob(job), error: String(err) }));
    }
  };
  ctx.cancellationSignal.addEventListener('abort', onAbort);
  let leave: 'ended' | 'detach' | 'superseded' | undefined;
  const exit = watchJobExit(job.jobDir);
  // A scheduler that cannot be asked for a while (slurmctld restarting) is not a job that ended.
  let unanswered = 0;
  const stillRunning = async () => {
    try {
      const running = await jobRunning(job);
      unanswered = 0;
      return running;
    } catch (err) {
      if (++unanswered > SCHEDULER_PATIENCE_SECONDS) throw err;
      ctx.log.warn('the scheduler did not answer: asking again', { job: describeJob(job), error: String(err) });
      return true;
    }
  };
  try {
    while (await stillRunning()) {
      const successor = supersededBy(job.jobDir, me);
      if (successor !== undefined) {
        leave = 'superseded';
        throw ApplicationFailure.retryable(`attempt ${successor} supervises the job (${describeJob(job)}) now`, 'Superseded');
      }
      renewLease(job.jobDir, me);
      ctx.heartbeat(job);
      // Woken by the job's exit status as it is written; once written, the wrapper is gone within moments.
      await Promise.race([sleep(1_000), exit.fired ? sleep(20) : exit.ended, ctx.cancelled.catch(() => undefined)]);
      if (ctx.cancellationSignal.aborted) {
        if (actionOnAbort() === 'detach') {
          leave = 'detach';
          // job.json holds the same handle, should this last beat not reach the server.
          try {
            ctx.heartbeat(job);
          } catch {
            /* the worker may refuse heartbeats while it shuts down */
          }
          ctx.log.info('worker shutting down: leaving the job running for the next attempt', { job: describeJob(job) });
          throw ApplicationFailure.retryable(
            `the worker is shutting down: the job (${describeJob(job)}) keeps running and the next attempt re-attaches to it`,
            'WorkerShutdown',
          );
        }
        throw ctx.cancellationSignal.reason ?? new Error('cancelled');
      }
    }
    leave = 'ended';
  } finally {
    exit.close();
    ctx.cancellationSignal.removeEventListener('abort', onAbort);
    if (leave === undefined) {
      if (ctx.cancellationSignal.aborted) onAbort();
      else await killJob(job).catch(() => undefined); // an error here: nobody watches the job any more
    }
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
 * Records that the job ended without its result (its exit status is consumed, so one run counts once):
 * the failure's message, and whether the runs that failed have reached MAX_FAILED_JOB_RUNS.
 */
function recordFailedRun(dir: string, what: string, logName: string): { message: string; final: boolean } {
  const code = exitCode(dir);
  const orphaned = fs.existsSync(path.join(dir, 'orphaned'));
  fs.appendFileSync(path.join(dir, 'failures.log'), `${new Date().toISOString()} exit=${code}${orphaned ? ' orphaned' : ''}\n`);
  for (const f of ['exit_code', 'orphaned']) fs.rmSync(path.join(dir, f), { force: true });
  const failures = fs.readFileSync(path.join(dir, 'failures.log'), 'utf8').trim().split('\n').length;
  const message = `${what} failed (exit ${code}${orphaned ? ', stopped as orphaned' : ''}; failed run ${failures} of at most ${MAX_FAILED_JOB_RUNS}):\n${logTail(path.join(dir, logName), 15)}`;
  return { message, final: failures >= MAX_FAILED_JOB_RUNS };
}

/** Fails the attempt for a job that ended without its result: retryably, or for good after MAX_FAILED_JOB_RUNS. */
function jobFailed(dir: string, what: string, logName: string, type: string): never {
  const { message, final } = recordFailedRun(dir, what, logName);
  throw final ? ApplicationFailure.nonRetryable(message, type) : ApplicationFailure.retryable(message, type);
}

/**
 * A job directory left by an earlier run of this workflow id (a failed or cancelled lifecycle started
 * again): its job, if it still runs, is killed, and its files are removed, so this run neither
 * re-attaches to nor reuses work done for another run's inputs.
 */
async function claimForRun(dir: string, previous: Partial<JobHandle> | undefined): Promise<Partial<JobHandle> | undefined> {
  const runId = currentRunId();
  if (previous?.runId === undefined || previous.runId === runId) return previous;
  if (await jobRunning(previous)) {
    Context.current().log.warn('killing the job left by an earlier run of this lifecycle', { job: describeJob(previous), runId: previous.runId });
    await killAndWait(previous);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return undefined;
}

/**
 * Launches (or re-attaches to) the training job for this lifecycle and returns when it has ended.
 * Heartbeats through the download, the run and the upload; cancellation kills the job's process group,
 * a worker shutting down detaches from it (the next attempt re-attaches).
 */
export async function trainModel(input: TrainInput): Promise<TrainedModel> {
  const certified = certifiedRef(input.certifiedKey);
  return withLineage(
    `factory.train.${input.modelName}`,
    { inputs: [certified], runFacets: { factory_image: customFacet('ImageRunFacet', { imageDigest: input.imageDigest }) } },
    () => train(input),
    async (trained) => {
      const schema = await lineageSchema(input.schemaPath);
      return {
        inputs: [certified],
        outputs: [
          {
            ...datasetRef(trained.artifactUri),
            facets: {
              ...(schema ? { columnLineage: modelColumnLineage(certified, schema) } : {}),
              factory_artifact: customFacet('ArtifactDatasetFacet', {
                artifactDigest: trained.artifactDigest,
                imageDigest: input.imageDigest,
                attach: trained.attach,
              }),
            },
          },
        ],
        runFacets: {
          factory_image: customFacet('ImageRunFacet', { imageDigest: input.imageDigest, trainerCodeDigest: trained.measured?.trainerCode.digest ?? null }),
        },
      };
    },
  );
}

/** The certified dataset as OpenLineage names it. */
function certifiedRef(certifiedKey: string): { namespace: string; name: string } {
  return datasetRef(`s3://${bucket(activityDeps().env, 'certified')}/${certifiedKey}`);
}

/** The schema for facets only: unreadable here means fewer facets, never a failed stage. */
async function lineageSchema(schemaPath: string): Promise<DatasetSchema | undefined> {
  const { env, s3 } = activityDeps();
  try {
    return datasetSchemaSchema.parse(JSON.parse((await readInput(s3, schemaPath, 'schema', inputLanes(env), MAX_SCHEMA_BYTES)).toString('utf8')));
  } catch {
    return undefined;
  }
}

async function train(input: TrainInput): Promise<TrainedModel> {
  const ctx = Context.current();
  const { env, s3 } = activityDeps();
  const jobDir = path.join(jobsDirFor(input.workflowId), 'train');
  fs.mkdirSync(jobDir, { recursive: true });
  const resultFile = path.join(jobDir, 'result.json');
  const previous = await claimForRun(jobDir, previousJob(jobDir));
  const dataFile = path.join(jobDir, 'data.csv');

  let handle: JobHandle | undefined;
  let attach: TrainedModel['attach'];
  if (fs.existsSync(resultFile)) {
    attach = 'finished-earlier';
  } else if (await jobRunning(previous)) {
    handle = previous as JobHandle;
    attach = 'reattached';
    ctx.log.info('re-attaching to the running training job', { job: describeJob(handle) });
  } else {
    throwIfRefused(jobDir);
    // A Slurm job that ended while no launcher watched it: its exit status and accounting.
    if (previous && typeof previous.slurmJobId === 'number' && !fs.existsSync(path.join(jobDir, 'accounting.json')))
      await collectSlurmJob(previous as JobHandle);
    // A job that ended without its result while no launcher watched it (the worker was gone) failed.
    if (fs.existsSync(path.join(jobDir, 'exit_code'))) {
      const failed = recordFailedRun(jobDir, 'training job', 'train.log');
      if (failed.final) throw ApplicationFailure.nonRetryable(failed.message, 'TrainingFailed');
    }
    const schemaFile = await fetchSchema(input.schemaPath, path.join(jobDir, 'schema.json'));
    await fetchCertified(input.certifiedKey, dataFile);
    handle = await startJob(jobDir, 'train.log', [
      path.join(projectRoot, 'trainers', 'train.py'),
      '--data',
      dataFile,
      '--schema',
      schemaFile,
      '--out',
      jobDir,
      '--epochs',
      String(input.epochs),
      '--seed',
      String(input.seed),
      '--image-digest',
      input.imageDigest,
    ]);
    attach = 'started';
  }

  // Training can run for hours: a worker shutting down leaves it running for the next attempt.
  if (handle) await supervise(handle, 'detach');
  const scheduler = handle
    ? await collectSlurmJob(handle)
    : (keptSchedulerRecord(jobDir) ?? (typeof previous?.slurmJobId === 'number' ? await collectSlurmJob(previous as JobHandle) : undefined));

  throwIfRefused(jobDir);
  if (!fs.existsSync(resultFile)) jobFailed(jobDir, 'training job', 'train.log', 'TrainingFailed');
  fs.rmSync(dataFile, { force: true }); // the certified bucket keeps it; a 200 MB copy per lifecycle need not stay
  const result = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as { metrics: Record<string, number>; environment: Record<string, unknown> };
  // Where the job ran, as the scheduler accounted it (Slurm only; a local job's record is unchanged).
  if (scheduler) result.environment.scheduler = scheduler;
  const onnx = fs.readFileSync(path.join(jobDir, 'model.onnx'));
  const digest = sha256Digest(onnx);
  const artifactKey = `models/${input.modelName}/${digest.slice(7)}/model.onnx`;
  ctx.heartbeat({ phase: 'upload' });
  const retainUntil = retainUntilInForce('artifacts');
  const put = await putOnce(s3, bucket(env, 'artifacts'), artifactKey, onnx, { contentType: 'application/octet-stream', retainUntil });
  // The training distribution monitoring compares traffic with: locked beside the artifact, named with its digest in the environment record.
  const distribution = await keepDistribution(jobDir, artifactKey);
  if (distribution) result.environment.trainingDistribution = distribution;
  await putOnce(s3, bucket(env, 'evidence'), `${artifactKey}.environment.json`, JSON.stringify(result.environment), {
    contentType: 'application/json',
    retainUntil,
  });
  const measured = await keepMeasurements(jobDir, artifactKey);
  return {
    artifactDigest: digest,
    artifactKey,
    artifactUri: put.uri,
    trainerMetrics: result.metrics,
    environment: result.environment,
    jobDir,
    attach,
    ...(measured ? { measured } : {}),
  };
}

/**
 * Independent evaluation of the stored artifact (not the trainer's own numbers) on the held-out
 * split. The artifact's digest is checked first: a changed file is refused. The evaluator runs as a
 * detached process group like the trainer, heartbeated, and killed when this attempt ends (worker
 * shutdown included); an evaluator left by an earlier attempt on a crashed worker is killed before a
 * new one starts.
 */
export async function evaluateModel(input: {
  workflowId: string;
  artifactKey: string;
  artifactDigest: string;
  certifiedKey: string;
  schemaPath: string;
  seed: number;
}): Promise<Record<string, number>> {
  const { env } = activityDeps();
  const artifact = datasetRef(`s3://${bucket(env, 'artifacts')}/${input.artifactKey}`);
  const evaluation = datasetRef(`s3://${bucket(env, 'evidence')}/${input.artifactKey}.evaluation.json`);
  const inputs = [
    { ...artifact, facets: { factory_artifact: customFacet('ArtifactDatasetFacet', { artifactDigest: input.artifactDigest }) } },
    certifiedRef(input.certifiedKey),
  ];
  return withLineage(
    'factory.evaluate',
    { inputs },
    () => evaluate(input),
    (metrics) => ({ inputs, outputs: [evaluation], runFacets: { factory_metrics: customFacet('MetricsRunFacet', { metrics }) } }),
  );
}

async function evaluate(input: {
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
  const previous = await claimForRun(dir, previousJob(dir));
  if (previous && (await jobRunning(previous))) {
    ctx.log.warn('killing the evaluator left by an earlier attempt', { job: describeJob(previous) });
    await killAndWait(previous);
  }
  for (const f of ['exit_code', 'refused.json', 'metrics.json', 'accounting.json']) fs.rmSync(path.join(dir, f), { force: true });

  ctx.heartbeat({ phase: 'download' });
  const onnx = await getBytes(s3, bucket(env, 'artifacts'), input.artifactKey);
  if (sha256Digest(onnx) !== input.artifactDigest) {
    throw ApplicationFailure.nonRetryable(`artifact ${input.artifactKey} does not match its digest ${input.artifactDigest}`, 'TamperedArtifact');
  }
  fs.writeFileSync(path.join(dir, 'model.onnx'), onnx);
  const schemaFile = await fetchSchema(input.schemaPath, path.join(dir, 'schema.json'));
  const dataFile = path.join(dir, 'data.csv');
  await fetchCertified(input.certifiedKey, dataFile);
  const job = await startJob(dir, 'evaluate.log', [
    path.join(projectRoot, 'trainers', 'evaluate.py'),
    '--model',
    path.join(dir, 'model.onnx'),
    '--data',
    dataFile,
    '--schema',
    schemaFile,
    '--seed',
    String(input.seed),
    '--out',
    dir,
  ]);
  // Evaluation is short and its inputs are fetched again: a worker shutting down kills it (the next
  // attempt starts a new one) rather than leave a second kind of job to re-attach to.
  await supervise(job, 'kill');
  await collectSlurmJob(job);
  throwIfRefused(dir);
  const metricsFile = path.join(dir, 'metrics.json');
  if (!fs.existsSync(metricsFile)) jobFailed(dir, 'evaluation', 'evaluate.log', 'EvaluationFailed');
  fs.rmSync(dataFile, { force: true });
  const metricsText = fs.readFileSync(metricsFile, 'utf8');
  // The evaluation report is evidence too: kept beside the artifact it judged, locked like it.
  await putOnce(s3, bucket(env, 'evidence'), `${input.artifactKey}.evaluation.json`, metricsText, {
    contentType: 'application/json',
    retainUntil: retainUntilInForce('evaluations'),
  });
  return JSON.parse(metricsText) as Record<string, number>;
}
