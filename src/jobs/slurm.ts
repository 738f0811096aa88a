/**
 * The Slurm launcher's side of a job: the batch script (the same wrapper as a local job, so exit
 * status, lease and orphan stop work alike), `sbatch`, the job's state by id (`squeue`, then the
 * jobcomp record through `sacct -c` once squeue has forgotten it), `scancel`, and accounting. The job
 * directory must be on storage the compute nodes share with the worker (FACTORY_HOME/jobs): the
 * script, the inputs, the log, the lease and the results all live there.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { jobEnv } from './child-env.ts';
import { type LeaseOwner, ORPHAN_AFTER_SECONDS, WRAPPER, renewLease } from './job-process.ts';

const exec = promisify(execFile);

/** What a worker asks Slurm for, from its configuration (FACTORY_SLURM_*). */
export interface SlurmRequest {
  partition?: string;
  /** A GRES request, e.g. `gpu:1` or `gpu:a100:2`: passed as `--gres`. */
  gres?: string;
  /** Slurm's --time (e.g. `120`, `2:00:00`, `1-00:00:00`). */
  timeLimit?: string;
}

/** States in which a job still holds (or waits for) its allocation: a launcher keeps watching it. */
export const ACTIVE_STATES = new Set([
  'PENDING',
  'CONFIGURING',
  'RUNNING',
  'COMPLETING',
  'SUSPENDED',
  'RESIZING',
  'REQUEUED',
  'REQUEUE_HOLD',
  'REQUEUE_FED',
  'SIGNALING',
  'STAGE_OUT',
  'STOPPED',
  'RESV_DEL_HOLD',
]);

/** Slurm refused the request itself: the same request fails the same way, so it is not retried. */
export class SlurmRequestRefused extends Error {
  override name = 'SlurmRequestRefused';
}

/** Slurm's own text, bounded and without control characters: safe to put in a message. */
function clean(text: string, max = 300): string {
  return text
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '?')
    .trim()
    .slice(0, max);
}

/** POSIX single quoting: the script passes every argument through verbatim. */
export function shellQuote(s: string): string {
  if (s.includes('\0')) throw new SlurmRequestRefused('a job argument contains a NUL character: refused');
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The batch script: `#!/bin/bash` (the wrapper needs bash >= 5.1; `--wrap` would run dash), the job
 * directory exported, the wrapper's arguments set, then the wrapper itself.
 */
export function batchScript(opts: { jobDir: string; command: string; args: string[]; orphanAfterSeconds?: number }): string {
  const argv = [String(opts.orphanAfterSeconds ?? ORPHAN_AFTER_SECONDS), opts.command, ...opts.args].map(shellQuote).join(' ');
  return `#!/bin/bash
# Written by the factory's Slurm launcher (src/jobs/slurm.ts); the job's files are in JOB_DIR.
export JOB_DIR=${shellQuote(opts.jobDir)}
cd "$JOB_DIR" || exit 1
set -- ${argv}
${WRAPPER}
`;
}

/** sbatch's arguments: one job, its output appended to the job's log, never requeued behind our back. */
export function sbatchArgs(opts: { jobName: string; jobDir: string; logFile: string; script: string; request: SlurmRequest }): string[] {
  const r = opts.request;
  return [
    '--parsable',
    `--job-name=${opts.jobName}`,
    `--chdir=${opts.jobDir}`,
    `--output=${opts.logFile}`,
    '--open-mode=append',
    // The job gets the environment sbatch was given (already scrubbed), nothing else of the worker's.
    '--export=ALL',
    '--no-requeue',
    ...(r.partition ? [`--partition=${r.partition}`] : []),
    ...(r.gres ? [`--gres=${r.gres}`] : []),
    ...(r.timeLimit ? [`--time=${r.timeLimit}`] : []),
    opts.script,
  ];
}

/**
 * What sbatch's refusal means for the user, or undefined when it is not a refusal of the request
 * (the controller unreachable, a timeout: those are retried).
 */
export function explainSbatchError(stderr: string, request: SlurmRequest): SlurmRequestRefused | undefined {
  const said = clean(stderr.replace(/sbatch: error: /g, '').replace(/\s*\n\s*/g, '; '));
  const gres = request.gres ? `--gres=${request.gres}` : 'no GRES';
  if (/Invalid generic resource \(gres\) specification/i.test(stderr)) {
    return new SlurmRequestRefused(
      `Slurm does not know the GPU request ${gres} (the cluster has no such GRES; is GresTypes=gpu set in slurm.conf?): fix FACTORY_SLURM_GRES. Slurm said: ${said}`,
    );
  }
  if (/Requested node configuration is not available/i.test(stderr)) {
    return new SlurmRequestRefused(
      `no node in partition ${request.partition ?? '(default)'} can ever satisfy ${gres}: ask for fewer GPUs (FACTORY_SLURM_GRES) or another partition (FACTORY_SLURM_PARTITION). Slurm said: ${said}`,
    );
  }
  if (/Invalid partition name specified|invalid partition specified/i.test(stderr)) {
    return new SlurmRequestRefused(`Slurm has no partition ${request.partition ?? '(default)'}: fix FACTORY_SLURM_PARTITION. Slurm said: ${said}`);
  }
  if (/Invalid (time limit|account|qos)|Requested time limit is invalid|Job violates accounting\/QOS policy/i.test(stderr)) {
    return new SlurmRequestRefused(`Slurm refused the job's request: ${said}`);
  }
  return undefined;
}

/** sbatch --parsable prints `<id>` or `<id>;<cluster>`. */
export function parseJobId(stdout: string): number {
  const m = /^(\d+)(;[\w.-]+)?\s*$/.exec(stdout.trim());
  if (!m) throw new Error(`sbatch printed no job id: ${clean(stdout, 200)}`);
  return Number(m[1]);
}

/** The environment of Slurm's client commands: a PATH and the cluster's config file, no credentials. */
function clientEnv(source: NodeJS.ProcessEnv): Record<string, string> {
  return {
    PATH: source.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    ...(source.SLURM_CONF ? { SLURM_CONF: source.SLURM_CONF } : {}),
  };
}

async function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { env, timeout: 30_000, maxBuffer: 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string; message?: string };
    if (e.code === 'ENOENT')
      throw new Error(`${cmd} not found on PATH: this worker is configured for Slurm (FACTORY_JOB_LAUNCHER=slurm) but has no Slurm client`);
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? e.message ?? '', code: typeof e.code === 'number' ? e.code : 1 };
  }
}

/**
 * Submits `command args…` as a batch job running in `jobDir`: the script is written there, the lease
 * renewed for `owner`, and sbatch runs with the scrubbed job environment (which the job inherits).
 * Throws SlurmRequestRefused when Slurm refuses the request itself.
 */
export async function submit(opts: {
  jobDir: string;
  logFile: string;
  jobName: string;
  command: string;
  args: string[];
  owner: LeaseOwner;
  request: SlurmRequest;
  orphanAfterSeconds?: number;
  source?: NodeJS.ProcessEnv;
}): Promise<number> {
  const source = opts.source ?? process.env;
  const script = path.join(opts.jobDir, 'job.sbatch');
  fs.writeFileSync(script, batchScript(opts), { mode: 0o700 });
  renewLease(opts.jobDir, opts.owner);
  const env = { ...jobEnv(source, opts.jobDir), ...clientEnv(source) };
  const got = await run('sbatch', sbatchArgs({ ...opts, script }), env);
  if (got.code !== 0) {
    throw explainSbatchError(got.stderr, opts.request) ?? new Error(`sbatch failed (exit ${got.code}): ${clean(got.stderr)}`);
  }
  return parseJobId(got.stdout);
}

export interface SlurmJobState {
  state: string;
  /** The job's working directory, as Slurm recorded it: the launcher checks it is this job's directory. */
  workDir?: string;
}

/** One job's accounting, from `sacct -c` (the jobcomp record; there is no slurmdbd to ask). */
export interface SlurmAccounting {
  jobId: number;
  jobName: string;
  partition: string;
  state: string;
  exitCode: string;
  elapsed: string;
  nodeList: string;
  start: string;
  end: string;
  workDir: string;
}

const SACCT_FIELDS = ['JobID', 'JobName', 'Partition', 'State', 'ExitCode', 'Elapsed', 'NodeList', 'Start', 'End', 'WorkDir'] as const;

/**
 * Parses `sacct -n -P -o <SACCT_FIELDS>`: the last record of the job (a requeued job has several),
 * and, given `workDir`, only one that ran there: job ids start again at 1 when a controller loses its
 * state, and the jobcomp file still holds the earlier jobs of the same ids.
 */
export function parseSacct(stdout: string, jobId: number, workDir?: string): SlurmAccounting | undefined {
  const rows = stdout
    .split('\n')
    .map((l) => l.split('|'))
    .filter((f) => f.length >= SACCT_FIELDS.length && f[0] === String(jobId) && (workDir === undefined || f[9] === workDir));
  const f = rows.at(-1);
  if (!f) return undefined;
  return {
    jobId,
    jobName: clean(f[1]!, 200),
    partition: clean(f[2]!, 100),
    // sacct prints e.g. "CANCELLED by 0".
    state: clean(f[3]!, 100).split(' ')[0]!,
    exitCode: clean(f[4]!, 20),
    elapsed: clean(f[5]!, 40),
    nodeList: clean(f[6]!, 300),
    start: clean(f[7]!, 40),
    end: clean(f[8]!, 40),
    workDir: clean(f[9]!, 1000),
  };
}

/**
 * The job's accounting: the jobcomp record (`sacct -c`, no slurmdbd needed), else slurmdbd's (plain
 * `sacct`, on clusters that keep accounting there instead).
 */
export async function accounting(jobId: number, workDir?: string, source: NodeJS.ProcessEnv = process.env): Promise<SlurmAccounting | undefined> {
  for (const from of [['-c'], []]) {
    const got = await run('sacct', [...from, '-j', String(jobId), '-n', '-P', '-o', SACCT_FIELDS.join(',')], clientEnv(source));
    const record = got.code === 0 ? parseSacct(got.stdout, jobId, workDir) : undefined;
    if (record) return record;
  }
  return undefined;
}

/**
 * The job's state: squeue while the controller remembers it (MinJobAge), then its jobcomp record.
 * Undefined when neither knows the id. Throws when Slurm cannot be asked (the controller down): the
 * caller must not take "cannot ask" for "the job ended".
 */
export async function jobState(jobId: number, source: NodeJS.ProcessEnv = process.env): Promise<SlurmJobState | undefined> {
  const q = await run('squeue', ['-j', String(jobId), '-t', 'all', '-h', '-o', '%T|%Z'], clientEnv(source));
  if (q.code === 0 && q.stdout.trim()) {
    const [state, workDir] = q.stdout.trim().split('\n')[0]!.split('|');
    return { state: clean(state ?? '', 40), workDir: clean(workDir ?? '', 1000) };
  }
  if (q.code !== 0 && !/Invalid job id/i.test(q.stderr)) throw new Error(`squeue failed (exit ${q.code}): ${clean(q.stderr)}`);
  const acct = await accounting(jobId, undefined, source);
  return acct ? { state: acct.state, workDir: acct.workDir } : undefined;
}

/** Cancels the job (`scancel`); a job already gone is not an error. */
export async function cancel(jobId: number, source: NodeJS.ProcessEnv = process.env): Promise<void> {
  const got = await run('scancel', [String(jobId)], clientEnv(source));
  if (got.code !== 0 && !/Invalid job id|already completing or completed/i.test(got.stderr)) {
    throw new Error(`scancel ${jobId} failed (exit ${got.code}): ${clean(got.stderr)}`);
  }
}
