import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledFailure } from '@temporalio/common';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/process/records.ts';
import { abortAction, killGroup, readLease, renewLease, spawnJob, supersededBy, watchJobExit } from '../../src/jobs/job-process.ts';

const dirs: string[] = [];
const pids: number[] = [];
function jobDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'job-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const pid of pids.splice(0)) killGroup(pid);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function waitForFile(file: string, ms = 20_000): Promise<string> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(50)) if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  throw new Error(`${file} never appeared`);
}

const owner = { runId: 'run-1', attempt: 1 };

describe('the job wrapper (real bash, real processes)', () => {
  it('records the exit status of the job as soon as it ends', async () => {
    const dir = jobDir();
    const started = Date.now();
    const pid = spawnJob({ jobDir: dir, logFile: path.join(dir, 'job.log'), command: '/bin/sh', args: ['-c', 'echo hello; exit 5'], owner });
    pids.push(pid);
    expect(await waitForFile(path.join(dir, 'exit_code'))).toBe('5');
    expect(Date.now() - started).toBeLessThan(1_500); // not after the watchdog's 2 s tick
    expect(fs.readFileSync(path.join(dir, 'job.log'), 'utf8')).toBe('hello\n');
    expect(fs.existsSync(path.join(dir, 'orphaned'))).toBe(false);
  });

  it('stops a job whose lease nobody renews (an orphan), and says so', async () => {
    const dir = jobDir();
    const pid = spawnJob({ jobDir: dir, logFile: path.join(dir, 'job.log'), command: '/bin/sleep', args: ['60'], owner, orphanAfterSeconds: 1 });
    pids.push(pid);
    expect(await waitForFile(path.join(dir, 'exit_code'))).toBe('137');
    expect(fs.readFileSync(path.join(dir, 'orphaned'), 'utf8').trim()).toBe('orphaned');
    expect(fs.readFileSync(path.join(dir, 'job.log'), 'utf8')).toMatch(/stopping it as orphaned/);
    for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
    expect(isAlive(pid)).toBe(false);
  }, 30_000);

  it('leaves a job alone while its lease is renewed', async () => {
    const dir = jobDir();
    const pid = spawnJob({ jobDir: dir, logFile: path.join(dir, 'job.log'), command: '/bin/sleep', args: ['4'], owner, orphanAfterSeconds: 1 });
    pids.push(pid);
    const renew = setInterval(() => renewLease(dir, owner), 300);
    try {
      expect(await waitForFile(path.join(dir, 'exit_code'))).toBe('0');
    } finally {
      clearInterval(renew);
    }
    expect(fs.existsSync(path.join(dir, 'orphaned'))).toBe(false);
  }, 30_000);

  it('a later attempt of the same run supersedes an earlier one; another run does not', () => {
    const dir = jobDir();
    renewLease(dir, { runId: 'run-1', attempt: 3 });
    expect(readLease(dir)).toEqual({ runId: 'run-1', attempt: 3 });
    expect(supersededBy(dir, { runId: 'run-1', attempt: 2 })).toBe(3);
    expect(supersededBy(dir, { runId: 'run-1', attempt: 3 })).toBeUndefined();
    expect(supersededBy(dir, { runId: 'run-0', attempt: 1 })).toBeUndefined();
  });
});

describe('what a launcher does when its attempt is aborted', () => {
  // The reasons are what @temporalio/worker puts in the CancelledFailure it aborts the activity with.
  it.each([
    ['WORKER_SHUTDOWN', {}, 'detach'],
    ['WORKER_SHUTDOWN', { workerShutdown: true }, 'detach'],
    ['PAUSED', { paused: true }, 'detach'],
    ['CANCELLED', { cancelRequested: true }, 'kill'],
    ['WORKER_SHUTDOWN', { workerShutdown: true, cancelRequested: true }, 'kill'],
    ['RESET', { reset: true }, 'kill'],
    ['TIMED_OUT', { timedOut: true }, 'kill-if-owner'],
    ['NOT_FOUND', { notFound: true }, 'kill-if-owner'],
    ['HEARTBEAT_DETAILS_CONVERSION_FAILED', {}, 'kill'],
  ] as const)('%s %j → %s', (reason, details, action) => {
    expect(abortAction(new CancelledFailure(reason), details)).toBe(action);
  });

  it('an abort that is not a cancellation (an error) kills', () => {
    expect(abortAction(new Error('boom'))).toBe('kill');
    expect(abortAction(undefined)).toBe('kill');
  });
});

describe('watchJobExit', () => {
  it('fires when the wrapper writes the exit status, and not for the lease or the log', async () => {
    const dir = jobDir();
    const exit = watchJobExit(dir);
    try {
      fs.writeFileSync(path.join(dir, 'lease'), '{}');
      fs.writeFileSync(path.join(dir, 'train.log'), 'epoch 1\n');
      const early = await Promise.race([exit.ended.then(() => 'fired'), sleep(200).then(() => 'quiet')]);
      expect(early).toBe('quiet');
      expect(exit.fired).toBe(false);
      const t0 = performance.now();
      fs.writeFileSync(path.join(dir, 'exit_code'), '0\n');
      await exit.ended;
      expect(exit.fired).toBe(true);
      expect(performance.now() - t0).toBeLessThan(1_000);
    } finally {
      exit.close();
    }
  });

  it('a job end is noticed by a real wrapper at once, without waiting for a poll', async () => {
    const dir = jobDir();
    const exit = watchJobExit(dir);
    try {
      const pid = spawnJob({
        jobDir: dir,
        logFile: path.join(dir, 'job.log'),
        command: 'sh',
        args: ['-c', 'sleep 0.3'],
        owner: { runId: 'r', attempt: 1 },
        orphanAfterSeconds: 60,
      });
      pids.push(pid);
      await exit.ended;
      expect(fs.readFileSync(path.join(dir, 'exit_code'), 'utf8').trim()).toBe('0');
    } finally {
      exit.close();
    }
  });
});
