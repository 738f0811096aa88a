import { Connection } from '@temporalio/client';
import fs from 'node:fs';
import path from 'node:path';
import { type Env, projectRoot } from '../../config/env.ts';
import { ensureFactoryKeyFile, signingKeyFile } from '../../signing/factory-key.ts';
import { ALL_TASK_QUEUES } from '../../domain/task-queues.ts';
import { newestSourceMtime } from '../newest-source.mjs';
import { StackRefusal, type Component, type StackContext } from '../component.ts';
import { ensureDevPolicyPack } from '../dev-keys.ts';
import { nodeEntrypoint } from '../node.ts';
import { ownedPid, processFiles, startDetached } from '../process.ts';
import { packAgreement, packInUse, readWorkerReady, workerReadyFile } from '../../process/worker-ready.ts';

/** temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY */
const TASK_QUEUE_TYPE_ACTIVITY = 2;

/** Task queues that have at least one activity poller seen in the last minute. */
export async function pollingQueues(ctx: StackContext): Promise<string[]> {
  const connection = await Connection.connect({ address: ctx.env.TEMPORAL_ADDRESS, connectTimeout: 1_000 });
  try {
    const found: string[] = [];
    for (const name of ALL_TASK_QUEUES) {
      const res = await connection.workflowService.describeTaskQueue({
        namespace: ctx.env.TEMPORAL_NAMESPACE,
        taskQueue: { name: `${ctx.env.FACTORY_TASK_QUEUE_PREFIX}${name}` },
        taskQueueType: TASK_QUEUE_TYPE_ACTIVITY,
      });
      const recent = (res.pollers ?? []).some((p) => {
        const seconds = Number(p.lastAccessTime?.seconds ?? 0);
        return Date.now() / 1000 - seconds < 60;
      });
      if (recent) found.push(name);
    }
    return found;
  } finally {
    await connection.close();
  }
}

/** The dev worker process writes its pid and policy pack here once all its workers poll (workers/run.ts). */
function readyFile(ctx: StackContext): string {
  return workerReadyFile(ctx.env.FACTORY_HOME);
}

/** Why the running workers must be replaced: none when they may stay. */
function staleness(ctx: StackContext): string[] {
  const reasons: string[] = [];
  const files = processFiles(ctx.env.FACTORY_HOME, 'workers');
  // Workers load the code once: after a change they run the old one, so they count as down and
  // `dev up` restarts them (replay tests keep such a change safe for running lifecycles).
  if (fs.statSync(files.pidFile).mtimeMs < newestSourceMtime(projectRoot)) reasons.push('the code changed since they started');
  // Likewise the policy pack they loaded: one pack for all, so a changed pack (or another
  // FACTORY_POLICY_PACK) restarts them. A broken pack never does: `validate` refuses first.
  const now = packInUse();
  const theirs = readWorkerReady(readyFile(ctx))?.policyPack;
  if ('digest' in now && !(theirs && 'digest' in theirs && theirs.digest === now.digest && theirs.path === now.path)) {
    reasons.push('the policy pack changed since they started');
  }
  return reasons;
}

/** A path as people read it: relative inside the project, absolute outside. */
function shown(file: string): string {
  const rel = path.relative(projectRoot, file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/**
 * Temporal remembers a poller for minutes after its worker died, so pollers alone prove nothing: the
 * dev worker process must be ours and alive, have written its ready file, and poll every queue.
 */
async function serving(ctx: StackContext): Promise<boolean> {
  const pid = ownedPid(processFiles(ctx.env.FACTORY_HOME, 'workers'));
  if (pid === undefined || readWorkerReady(readyFile(ctx))?.pid !== pid) return false;
  try {
    const polling = await pollingQueues(ctx);
    return ALL_TASK_QUEUES.every((q) => polling.includes(q));
  } catch {
    return false;
  }
}

/**
 * The local stack's signing key: FACTORY_SIGNING_KEY(_FILE) when set, else $FACTORY_HOME/keys/factory-signing.pem,
 * made (0600) when missing. Returns what to add to the workers' environment.
 */
export function devSigningKeyEnv(env: Pick<Env, 'FACTORY_HOME' | 'FACTORY_SIGNING_KEY' | 'FACTORY_SIGNING_KEY_FILE'>): NodeJS.ProcessEnv {
  if (env.FACTORY_SIGNING_KEY) return {};
  const file = signingKeyFile(env)!;
  if (!env.FACTORY_SIGNING_KEY_FILE) ensureFactoryKeyFile(file);
  return { FACTORY_SIGNING_KEY_FILE: file };
}

/** The dev worker process: one worker per task queue (control, gpu-onprem, serving). */
export const workers: Component = {
  name: 'workers',
  startTimeoutMs: 90_000,
  hint: 'the worker log shows why it stopped',
  endpoint: () => ALL_TASK_QUEUES.join(','),
  async healthy(ctx) {
    return (await serving(ctx)) && staleness(ctx).length === 0;
  },
  ready: serving,
  async prepare(ctx) {
    // Running workers found healthy were started with it; a first `up` after an upgrade makes it too.
    devSigningKeyEnv(ctx.env);
    // The audit chain is anchored every N minutes while events flow (and at every lifecycle's end).
    // The retention job deletes what policy allows (retain-until passed, no legal hold) once a day.
    // The revalidation sweep opens a review for each version past its tier's revalidateEvery, daily.
    const [{ connectClient }, { ensureCheckpointSchedule }, { ensureRetentionSchedule }, { scheduleRevalidation }] = await Promise.all([
      import('../../temporal.ts'),
      import('../../lifecycle/checkpoints.ts'),
      import('../../lifecycle/governance.ts'),
      import('../../lifecycle/revalidation.ts'),
    ]);
    const client = await connectClient(ctx.env);
    try {
      await ensureCheckpointSchedule(client, { everyMinutes: ctx.env.FACTORY_AUDIT_CHECKPOINT_MINUTES, taskQueuePrefix: ctx.env.FACTORY_TASK_QUEUE_PREFIX });
      await ensureRetentionSchedule(client, { everyHours: ctx.env.FACTORY_RETENTION_SWEEP_HOURS, taskQueuePrefix: ctx.env.FACTORY_TASK_QUEUE_PREFIX });
      await scheduleRevalidation(client, { every: '1d', taskQueuePrefix: ctx.env.FACTORY_TASK_QUEUE_PREFIX });
    } finally {
      await client.connection.close();
    }
  },
  async validate(ctx) {
    // The dev principals' keys and the effective pack (policies/default.yaml + their public keys),
    // made if missing: the pack checked below is then that one (unless FACTORY_POLICY_PACK names another).
    try {
      ensureDevPolicyPack(ctx.env);
    } catch (err) {
      throw new StackRefusal('workers', `the dev principals' keys or effective policy pack could not be made: ${(err as Error).message.split('\n')[0]}`);
    }
    // Workers on a broken pack would fail every lifecycle at its first step: refuse before any
    // running worker is replaced.
    const pack = packInUse();
    if ('error' in pack) {
      throw new StackRefusal(
        'workers',
        `the policy pack is broken, so the workers were not (re)started; running ones were left as they are:\n  ${pack.error}\n  (FACTORY_POLICY_PACK, else policies/default.yaml)`,
      );
    }
  },
  async start(ctx) {
    const { command, args } = nodeEntrypoint('workers/run.ts');
    fs.rmSync(readyFile(ctx), { force: true });
    const key = devSigningKeyEnv(ctx.env);
    startDetached(processFiles(ctx.env.FACTORY_HOME, 'workers'), command, args, {
      // The pack `up` validated, by absolute path: the workers load exactly that file.
      // Home and queue prefix from the stack's own environment (an isolated stack may differ from ours).
      env: {
        ...process.env,
        FACTORY_HOME: ctx.env.FACTORY_HOME,
        FACTORY_TASK_QUEUE_PREFIX: ctx.env.FACTORY_TASK_QUEUE_PREFIX,
        FACTORY_POLICY_PACK: packInUse().path,
        FACTORY_WORKER_READY_FILE: readyFile(ctx),
        ...key,
      },
    });
  },
  async describe(ctx) {
    const a = packAgreement(ctx.env.FACTORY_HOME);
    const stale = ownedPid(processFiles(ctx.env.FACTORY_HOME, 'workers')) !== undefined ? staleness(ctx) : [];
    const pack = 'digest' in a.cli ? `policy pack ${shown(a.cli.path)} ${a.cli.digest.slice(0, 19)}…` : 'policy pack BROKEN';
    return [pack, a.warning, ...stale.map((why) => `${why}: \`factory dev up\` restarts them`)].filter(Boolean).join('; ');
  },
  async facts(ctx) {
    const a = packAgreement(ctx.env.FACTORY_HOME);
    return { policyPack: { ...a.cli, workers: a.workers ?? null, agrees: a.agrees, ...(a.warning ? { warning: a.warning } : {}) } };
  },
};
