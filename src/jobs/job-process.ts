/**
 * A job (trainer, evaluator) as a process group of its own, outliving the worker that launched it,
 * and what a launcher does when its activity attempt ends before the job.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { jobEnv } from './child-env.ts';

/**
 * How long a job runs with no launcher watching it before it stops itself. A launcher renews the
 * lease every second while it supervises; a worker restart or crash leaves it stale for seconds (the
 * next attempt re-attaches and renews it). A job whose lifecycle was cancelled or terminated while
 * no worker watched it gets no next attempt: without this it would run, and hold its GPU, forever.
 */
export const ORPHAN_AFTER_SECONDS = 15 * 60;

export const LEASE_FILE = 'lease';
/** What the wrapper writes when the job ends: its exit status. */
export const EXIT_CODE_FILE = 'exit_code';

/**
 * The wrapper: runs the job in the background, records its exit status in $JOB_DIR/exit_code (written
 * beside and renamed into place, so whoever sees the file sees its whole content; a later
 * attempt reads it when it was not the parent), and kills it when the lease has not been renewed for
 * $1 seconds (writing $JOB_DIR/orphaned). `wait -n -p` (bash >= 5.1) returns as soon as the job ends.
 * The Slurm launcher runs the same wrapper as its batch script (src/jobs/slurm.ts).
 */
export const WRAPPER = String.raw`orphan_after=$1; shift
"$@" &
job=$!
while :; do
  sleep 2 & tick=$!
  wait -n -p ended "$job" "$tick"; status=$?
  if [ "$ended" = "$job" ]; then kill "$tick" 2>/dev/null; break; fi
  renewed=$(stat -c %Y "$JOB_DIR/lease" 2>/dev/null || echo 0)
  if [ $((EPOCHSECONDS - renewed)) -gt "$orphan_after" ]; then
    echo "factory: no launcher has watched this job for more than $orphan_after s: stopping it as orphaned" >&2
    echo orphaned > "$JOB_DIR/orphaned"
    kill -KILL "$job" 2>/dev/null
  fi
done
echo "$status" > "$JOB_DIR/${EXIT_CODE_FILE}.tmp" && mv -f "$JOB_DIR/${EXIT_CODE_FILE}.tmp" "$JOB_DIR/${EXIT_CODE_FILE}"`;

/**
 * Fires when the wrapper writes the job's exit status, so the launcher notices the end at once instead
 * of at its next one-second turn (up to a second per training and per evaluation otherwise). A watch
 * may miss a write made on another host (Slurm on shared storage): the launcher's poll stays the
 * fallback. `fired` stays true once it has fired.
 */
export function watchJobExit(jobDir: string): { ended: Promise<void>; readonly fired: boolean; close(): void } {
  let fire!: () => void;
  let fired = false;
  const ended = new Promise<void>((resolve) => (fire = resolve)).then(() => void (fired = true));
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(jobDir, (_event, file) => {
      if (file === EXIT_CODE_FILE) fire();
    });
    watcher.on('error', () => watcher?.close());
  } catch {
    /* no watch (the directory is gone, or the platform has none): the poll notices the end */
  }
  return {
    ended,
    get fired() {
      return fired;
    },
    close: () => watcher?.close(),
  };
}

/** Who supervises a job now: the lifecycle run and the activity attempt. */
export interface LeaseOwner {
  runId: string;
  attempt: number;
}

/** Renews the job's lease for this owner (content and mtime). */
export function renewLease(jobDir: string, owner: LeaseOwner): void {
  fs.writeFileSync(path.join(jobDir, LEASE_FILE), JSON.stringify(owner));
}

export function readLease(jobDir: string): Partial<LeaseOwner> | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(jobDir, LEASE_FILE), 'utf8')) as Partial<LeaseOwner>;
  } catch {
    return undefined;
  }
}

/** A later attempt of the same run has taken the job over: this one must neither renew nor kill it. */
export function supersededBy(jobDir: string, me: LeaseOwner): number | undefined {
  const lease = readLease(jobDir);
  return lease?.runId === me.runId && typeof lease.attempt === 'number' && lease.attempt > me.attempt ? lease.attempt : undefined;
}

/**
 * Starts `command args…` under the wrapper as a new session (its own process group), stdout and
 * stderr appended to `logFile`, with the scrubbed job environment. Returns the wrapper's pid (the
 * group's id). The lease is renewed for `owner` before the job starts.
 */
export function spawnJob(opts: {
  jobDir: string;
  logFile: string;
  command: string;
  args: string[];
  owner: LeaseOwner;
  orphanAfterSeconds?: number;
  source?: NodeJS.ProcessEnv;
}): number {
  renewLease(opts.jobDir, opts.owner);
  const log = fs.openSync(opts.logFile, 'a');
  try {
    const child = spawn('bash', ['-c', WRAPPER, 'job', String(opts.orphanAfterSeconds ?? ORPHAN_AFTER_SECONDS), opts.command, ...opts.args], {
      detached: true,
      stdio: ['ignore', log, log],
      env: jobEnv(opts.source ?? process.env, opts.jobDir),
      cwd: opts.jobDir,
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${opts.command}`);
    return child.pid;
  } finally {
    fs.closeSync(log);
  }
}

/** What a launcher does with its job when its attempt is aborted. */
export type AbortAction = 'detach' | 'kill' | 'kill-if-owner';

/**
 * The cause of an activity's abort, from the SDK's cancellation (a `CancelledFailure` whose message is
 * Core's reason, and `cancellationDetails`):
 * - the workflow asked for cancellation, or the activity was reset: kill (nobody wants the result);
 * - the worker is shutting down (SIGTERM, `dev up` replacing workers), or the activity was paused:
 *   detach (the job keeps running; the next attempt, on this worker's successor, re-attaches);
 * - a timeout or the server no longer knowing this attempt: kill, unless a later attempt has already
 *   taken the job over (a heartbeat delayed on a loaded machine must not kill the job its successor
 *   supervises).
 * Anything else (an error in the launcher itself) kills: the attempt fails and its retry starts afresh.
 */
export function abortAction(
  reason: unknown,
  details?: { cancelRequested?: boolean; reset?: boolean; workerShutdown?: boolean; paused?: boolean; timedOut?: boolean; notFound?: boolean },
): AbortAction {
  const message = reason instanceof Error ? reason.message : String(reason);
  if (details?.cancelRequested || details?.reset || message === 'CANCELLED' || message === 'RESET') return 'kill';
  if (details?.timedOut || details?.notFound || message === 'TIMED_OUT' || message === 'NOT_FOUND') return 'kill-if-owner';
  if (details?.workerShutdown || details?.paused || message === 'WORKER_SHUTDOWN' || message === 'PAUSED') return 'detach';
  return 'kill';
}

export function killGroup(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}
