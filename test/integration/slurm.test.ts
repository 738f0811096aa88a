/**
 * Training and evaluation through a real single-node Slurm (slurm-wlm, started by this file): a
 * lifecycle deploys; its training job survives its worker's SIGKILL (the next attempt re-attaches by
 * job id, no second sbatch); `factory lifecycle cancel` ends the job CANCELLED (scancel); a GRES
 * request no node can satisfy fails the lifecycle at once, saying what to fix.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLease } from '../../src/jobs/job-process.ts';
import { env } from '../helpers.ts';
import { IsolatedWorkers, approveAndFinish, factoryCli, lifecycleSuite, startTestLifecycle, waitFor } from './harness.ts';
import { PARTITION, type SlurmCluster, startSlurm } from './slurm-cluster.ts';

const exec = promisify(execFile);
const TEST_TIMEOUT = 600_000;
const SLURM_WORKERS = { FACTORY_JOB_LAUNCHER: 'slurm', FACTORY_SLURM_PARTITION: PARTITION, FACTORY_SLURM_GRES: 'gpu:1' };

let cluster: SlurmCluster | undefined;
// Before the suite's workers start: they find the cluster through SLURM_CONF in this process's env.
beforeAll(async () => {
  cluster = await startSlurm();
}, 300_000);
afterAll(async () => {
  await cluster?.stop();
}, 120_000);

const suite = lifecycleSuite({ workerEnv: SLURM_WORKERS });
const { db } = suite;

async function slurmCmd(cmd: string, args: string[]): Promise<string> {
  return (await exec(cmd, args, { env: { ...process.env } })).stdout;
}

/** The job's record in the jobcomp file (`sacct -c`): its state and exit code. */
async function sacct(jobId: number): Promise<{ state: string; exitCode: string } | undefined> {
  const out = await slurmCmd('sacct', ['-c', '-j', String(jobId), '-n', '-P', '-o', 'JobID,State,ExitCode']);
  const row = out
    .trim()
    .split('\n')
    .map((l) => l.split('|'))
    .filter((f) => f[0] === String(jobId))
    .at(-1);
  return row ? { state: row[1]!.split(' ')[0]!, exitCode: row[2]! } : undefined;
}

function jobDirOf(workflowId: string, step: 'train' | 'evaluate'): string {
  return path.join(env.FACTORY_HOME, 'jobs', workflowId, step);
}

function read(dir: string, f: string): string {
  return fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), 'utf8') : '';
}

/** Every sbatch of a job directory, as starts.log recorded it. */
function slurmStarts(dir: string): number[] {
  return [...read(dir, 'starts.log').matchAll(/slurm=(\d+)/g)].map((m) => Number(m[1]));
}

/** The training job once it is really training (its first progress line), then suspended by Slurm so it cannot finish early. */
async function suspendedTrainingJob(workflowId: string): Promise<{ jobDir: string; jobId: number }> {
  const jobDir = jobDirOf(workflowId, 'train');
  const jobId = await waitFor(
    'the training job to start',
    () => (read(jobDir, 'train.log').includes('"epoch": 0') ? slurmStarts(jobDir)[0] : undefined),
    300_000,
    10,
  );
  await slurmCmd('scontrol', ['suspend', String(jobId)]);
  expect((await slurmCmd('squeue', ['-j', String(jobId), '-h', '-o', '%T'])).trim()).toBe('SUSPENDED');
  expect(fs.existsSync(path.join(jobDir, 'result.json'))).toBe(false);
  return { jobDir, jobId };
}

async function trainingPayload(workflowId: string): Promise<Record<string, unknown>> {
  const row = await db
    .selectFrom('audit_events')
    .select('payload')
    .where('workflow_id', '=', workflowId)
    .where('step', '=', 'training.completed')
    .executeTakeFirstOrThrow();
  return row.payload as Record<string, unknown>;
}

describe('training on a real Slurm cluster', () => {
  it(
    'a lifecycle trains and evaluates as Slurm jobs asking for a GPU through GRES, and deploys; the accounting comes from sacct',
    async () => {
      const { workflowId } = await startTestLifecycle(suite.client, suite.workers, { training: { epochs: 200, seed: 7 } });
      const outcome = await approveAndFinish(suite.client, workflowId);
      expect(outcome.outcome).toBe('deployed');

      const train = jobDirOf(workflowId, 'train');
      const [trainJob] = slurmStarts(train);
      expect(slurmStarts(train)).toHaveLength(1);
      expect(await sacct(trainJob!)).toEqual({ state: 'COMPLETED', exitCode: '0:0' });
      const [evalJob] = slurmStarts(jobDirOf(workflowId, 'evaluate'));
      expect(await sacct(evalJob!)).toEqual({ state: 'COMPLETED', exitCode: '0:0' });
      // The batch script is bash and its environment is the scrubbed one: no credentials reached the job.
      expect(read(train, 'job.sbatch').startsWith('#!/bin/bash\n')).toBe(true);

      const payload = await trainingPayload(workflowId);
      expect(payload.attach).toBe('started');
      expect((payload.environment as Record<string, unknown>).scheduler).toMatchObject({
        launcher: 'slurm',
        jobId: trainJob,
        partition: PARTITION,
        state: 'COMPLETED',
        exitCode: '0:0',
        gres: 'gpu:1',
        workDir: train,
      });
    },
    TEST_TIMEOUT,
  );

  it(
    'the training job survives its worker killed with SIGKILL: the next attempt re-attaches by job id (no second sbatch) and the lifecycle deploys',
    async () => {
      const { workflowId } = await startTestLifecycle(suite.client, suite.workers, { training: { epochs: 1_000, seed: 7 } });
      const { jobDir, jobId } = await suspendedTrainingJob(workflowId);
      try {
        await suite.workers.kill('gpu-onprem', 'SIGKILL');
        expect((await slurmCmd('squeue', ['-j', String(jobId), '-h', '-o', '%T'])).trim()).toBe('SUSPENDED');
        await suite.workers.start('gpu-onprem');
        // The server gives the dead attempt up after its heartbeat timeout; the next one takes the job over.
        await waitFor('the next attempt to take the job over', () => ((readLease(jobDir)?.attempt ?? 1) >= 2 ? true : undefined));
      } finally {
        await slurmCmd('scontrol', ['resume', String(jobId)]);
      }
      const outcome = await approveAndFinish(suite.client, workflowId);
      expect(outcome.outcome).toBe('deployed');
      expect(slurmStarts(jobDir)).toEqual([jobId]);
      expect(await sacct(jobId)).toEqual({ state: 'COMPLETED', exitCode: '0:0' });
      const payload = await trainingPayload(workflowId);
      expect(payload.attach).toBe('reattached');
      expect((payload.environment as Record<string, unknown>).scheduler).toMatchObject({ jobId, state: 'COMPLETED' });
      expect(await db.selectFrom('model_versions').select('id').where('workflow_id', '=', workflowId).execute()).toHaveLength(1);
    },
    TEST_TIMEOUT,
  );

  it(
    '`factory lifecycle cancel` during training cancels the Slurm job (scancel): it ends CANCELLED in sacct',
    async () => {
      const { workflowId } = await startTestLifecycle(suite.client, suite.workers, { training: { epochs: 3_000, seed: 7 } });
      const { jobDir, jobId } = await suspendedTrainingJob(workflowId);
      const cancelled = await factoryCli(['lifecycle', 'cancel', workflowId, '--reason', 'wrong data', '--as', 'dana@hospital.example', '--wait', '--json']);
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(JSON.parse(cancelled.stdout)).toMatchObject({ workflowId, temporalStatus: 'CANCELED' });
      const ended = await waitFor('the job to be accounted', async () => {
        const got = await sacct(jobId);
        return got && got.state !== 'RUNNING' && got.state !== 'SUSPENDED' ? got : undefined;
      });
      expect(ended.state).toBe('CANCELLED');
      // squeue says COMPLETING for a moment while the node cleans up, then CANCELLED.
      await waitFor(
        'squeue to show the job CANCELLED',
        async () => ((await slurmCmd('squeue', ['-j', String(jobId), '-t', 'all', '-h', '-o', '%T'])).trim() === 'CANCELLED' ? true : undefined),
        30_000,
        200,
      );
      expect(fs.existsSync(path.join(jobDir, 'result.json'))).toBe(false);
      expect(slurmStarts(jobDir)).toEqual([jobId]);
    },
    TEST_TIMEOUT,
  );

  it(
    'a GRES request no node can satisfy fails the lifecycle at once, non-retryably, saying what to fix',
    async () => {
      const workers = new IsolatedWorkers({ ...SLURM_WORKERS, FACTORY_SLURM_GRES: 'gpu:2' });
      await Promise.all([workers.start('control'), workers.start('gpu-onprem')]);
      try {
        const { workflowId } = await startTestLifecycle(suite.client, workers);
        await expect(suite.client.workflow.getHandle(workflowId).result()).rejects.toThrow();
        const status = await factoryCli(['status', workflowId, '--json']);
        const failure = (JSON.parse(status.stdout) as { failure?: { type: string; message: string } }).failure;
        expect(failure?.type).toBe('SlurmRequestRefused');
        expect(failure?.message).toContain('can ever satisfy --gres=gpu:2');
        expect(failure?.message).toContain('FACTORY_SLURM_GRES');
        expect(failure?.message).toContain('Requested node configuration is not available');
        // One attempt, no job: Slurm refused the request at submission.
        const history = await suite.client.workflow.getHandle(workflowId).fetchHistory();
        const attempts = history.events!.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
        expect(Math.max(...attempts)).toBe(1);
        expect(slurmStarts(jobDirOf(workflowId, 'train'))).toEqual([]);
        const human = await factoryCli(['status', workflowId]);
        expect(human.stdout + human.stderr).toContain('FACTORY_SLURM_GRES');
      } finally {
        await workers.stopAll();
      }
    },
    TEST_TIMEOUT,
  );
});
