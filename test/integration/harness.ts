import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll } from 'vitest';
import { createEnvDb } from '../../src/db/connect.ts';
import type { Database } from '../../src/db/schema.ts';
import { sha256Digest } from '../../src/storage/objects.ts';
import { projectRoot } from '../../src/config/env.ts';
import type { ApprovalStatus } from '../../src/domain/approval.ts';
import type { LifecycleInput, LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import type { TaskQueue } from '../../src/domain/task-queues.ts';
import { devSigningKeyEnv } from '../../src/dev/components/workers.ts';
import { venvPaths } from '../../src/dev/venv.ts';
import { approvalStatus, decide, startLifecycle } from '../../src/lifecycle/client.ts';
import { principalKeyFile } from '../../src/signing/ssh-keygen.ts';
import { env } from '../helpers.ts';
import { type DecisionToSign, signedPayload } from '../signing.ts';

export const exec = promisify(execFile);
export const DATASET = path.join(projectRoot, 'datasets', 'breast-cancer-wisconsin', 'wdbc.csv');
export const IMAGE = `sha256:${'ab'.repeat(32)}`;
/** Test workers read datasets from the project's datasets/ and the files tests generate under FACTORY_HOME/test-data. */
export const TEST_DATA = path.join(env.FACTORY_HOME, 'test-data');
export const TEST_DATA_ROOTS =
  process.env.FACTORY_DATA_ROOTS ?? [path.join(projectRoot, 'datasets'), path.join(env.FACTORY_HOME, 'landing'), TEST_DATA].join(':');

export function randomCommit(): string {
  return randomBytes(20).toString('hex');
}

/**
 * Worker processes of our own, one per zone, on task queues with a unique prefix: the test can
 * SIGKILL one zone, or give the workers a database route it controls, without touching the dev stack.
 */
export class IsolatedWorkers {
  readonly prefix = `t${randomBytes(4).toString('hex')}-`;
  private readonly procs = new Map<TaskQueue, ChildProcess>();

  constructor(private readonly extraEnv: NodeJS.ProcessEnv = {}) {}

  async start(queue: TaskQueue): Promise<ChildProcess> {
    const log = path.join(env.FACTORY_HOME, 'logs', `test-${this.prefix}${queue}.log`);
    fs.mkdirSync(path.dirname(log), { recursive: true });
    const fd = fs.openSync(log, 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'workers', 'run.ts'), queue], {
      stdio: ['ignore', fd, fd],
      env: {
        ...process.env,
        FACTORY_DATA_ROOTS: TEST_DATA_ROOTS,
        // The stack's signing key (global setup's `dev up` made it): checkpoints and provenance are signed.
        ...devSigningKeyEnv(env),
        ...this.extraEnv,
        FACTORY_TASK_QUEUE_PREFIX: this.prefix,
        LOG_LEVEL: 'info',
      },
    });
    fs.closeSync(fd);
    this.procs.set(queue, child);
    // A worker transpiles and (control) bundles the workflow code first: over a minute beside a CPU hog.
    for (const deadline = Date.now() + 300_000; Date.now() < deadline;) {
      if (fs.readFileSync(log, 'utf8').includes('workers polling')) return child;
      if (child.exitCode !== null) throw new Error(`worker ${queue} exited:\n${fs.readFileSync(log, 'utf8').slice(-2000)}`);
      await sleep(100);
    }
    child.kill('SIGKILL');
    throw new Error(`worker ${queue} did not start`);
  }

  async startAll(): Promise<void> {
    await Promise.all((['control', 'gpu-onprem', 'serving'] as TaskQueue[]).map((q) => this.start(q)));
  }

  async kill(queue: TaskQueue, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.procs.get(queue);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    // A worker still starting up may not act on SIGTERM yet: never leave one behind a test.
    const killLater = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(killLater);
    this.procs.delete(queue);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((q) => this.kill(q, 'SIGTERM')));
  }
}

export async function startTestLifecycle(client: Client, workers: IsolatedWorkers, input: Partial<LifecycleInput> = {}) {
  const full: LifecycleInput = {
    modelName: `bc-${workers.prefix.slice(1, -1)}`,
    datasetPath: DATASET,
    commitSha: randomCommit(),
    imageDigest: IMAGE,
    riskTier: 'low',
    requester: 'ci@hospital.example',
    developer: 'alice@hospital.example',
    training: { epochs: 200, seed: 7 },
    ...input,
  };
  const started = await startLifecycle(client, full, { taskQueuePrefix: workers.prefix });
  return { ...started, input: full };
}

export async function waitForStatus(client: Client, workflowId: string, ok: (s: ApprovalStatus) => boolean, timeoutMs = 120_000): Promise<ApprovalStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: ApprovalStatus | undefined;
  while (Date.now() < deadline) {
    last = await approvalStatus(client, workflowId).catch(() => undefined);
    if (last && ok(last)) return last;
    await sleep(250);
  }
  throw new Error(`timed out waiting on ${workflowId}; last status: ${JSON.stringify(last)}`);
}

/**
 * A decision on the lifecycle's candidate as it stands now, signed with the approver's dev key (made by
 * `factory dev up` under FACTORY_HOME), or `keyFile`. `statement` signs other fields than the payload
 * sends: a replayed or forged statement.
 */
export async function signedDecision(
  client: Client,
  workflowId: string,
  d: Omit<DecisionToSign, 'workflowId' | 'model' | 'version' | 'modelDigest'> & Partial<Pick<DecisionToSign, 'modelDigest'>> & { keyFile?: string },
) {
  const s = await approvalStatus(client, workflowId);
  if (s.version === undefined || !s.modelDigest) throw new Error(`${workflowId} has no candidate yet (stage ${s.stage})`);
  const { keyFile, ...rest } = d;
  return signedPayload(keyFile ?? principalKeyFile(env.FACTORY_HOME, d.approver), {
    workflowId,
    model: s.modelName,
    version: s.version,
    modelDigest: s.modelDigest,
    ...rest,
  });
}

/** Polls `probe` until it returns something (not undefined or false). */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 300_000, everyMs = 100): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(everyMs)) {
    const got = await probe();
    if (got !== undefined && got !== false) return got;
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits for the lifecycle's gate, approves as the model owner, and returns the lifecycle's outcome. */
export async function approveAndFinish(client: Client, workflowId: string): Promise<LifecycleOutcome> {
  const s = await waitForStatus(client, workflowId, (st) => st.stage === 'approval', 400_000);
  const verdict = await decide(client, workflowId, {
    decision: 'approve',
    approver: 'omar@hospital.example',
    role: 'model-owner',
    meaning: 'approval',
    modelDigest: s.modelDigest!,
  });
  if (!verdict.accepted) throw new Error(`the approval was refused: ${JSON.stringify(verdict)}`);
  return (await client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
}

/** Runs the real Temporal CLI, as a person at a terminal would. */
export async function temporalCli(args: string[]): Promise<string> {
  const { stdout } = await exec(venvPaths(env).temporal, [...args, '--address', env.TEMPORAL_ADDRESS, '--namespace', env.TEMPORAL_NAMESPACE]);
  return stdout;
}

/** Runs the factory CLI; returns exit code and output. */
export async function factoryCli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [path.join(projectRoot, 'bin', 'factory.mjs'), ...args], { env: { ...process.env, ...extraEnv } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A TCP proxy the test can cut and restore: "the database is unreachable for a while". */
export class CuttableProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async open(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Refuses new connections and breaks the open ones. */
  async cut(): Promise<void> {
    const closed = new Promise((resolve) => this.server?.close(resolve));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

/**
 * The shared frame of a lifecycle test file: a client of the real Temporal server, a database handle,
 * and isolated workers (started for the whole file unless `startWorkers` is false).
 */
export function lifecycleSuite({ workerEnv = {}, startWorkers = true }: { workerEnv?: NodeJS.ProcessEnv; startWorkers?: boolean } = {}) {
  const suite = { db: createEnvDb(env, 2), workers: new IsolatedWorkers(workerEnv), client: undefined as unknown as Client };
  let testEnv: TestWorkflowEnvironment | undefined;
  beforeAll(async () => {
    testEnv = await TestWorkflowEnvironment.createFromExistingServer({ address: env.TEMPORAL_ADDRESS, namespace: env.TEMPORAL_NAMESPACE });
    suite.client = testEnv.client;
    if (startWorkers) await suite.workers.startAll();
  });
  afterAll(async () => {
    await suite.workers.stopAll();
    await testEnv?.teardown();
    await suite.db.destroy();
  });
  return suite;
}

/** The gateway as its own process (so the test can SIGKILL it), on a pack naming the test's models and keys. */
export class GatewayProcess {
  child?: ChildProcess;
  constructor(
    private readonly extraEnv: NodeJS.ProcessEnv,
    readonly port: number,
  ) {}

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const log = path.join(env.FACTORY_HOME, 'logs', `test-gateway-${this.port}.log`);
    fs.mkdirSync(path.dirname(log), { recursive: true });
    const fd = fs.openSync(log, 'a');
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src', 'gateway', 'run.ts')], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...this.extraEnv, FACTORY_GATEWAY_PORT: String(this.port), LOG_LEVEL: 'info' },
    });
    fs.closeSync(fd);
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
      if (this.child.exitCode !== null) throw new Error(`gateway exited:\n${fs.readFileSync(log, 'utf8').slice(-2000)}`);
      const ok = await fetch(`${this.base}/v2/health/live`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
    }
    throw new Error('gateway did not start');
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}

/** One inference through a gateway at `base` (KServe v2 JSON). */
export function gatewayCall(base: string, model: string, key: string | undefined, init: { body: string; contentType?: string; version?: number }) {
  const route = init.version === undefined ? `/v2/models/${model}/infer` : `/v2/models/${model}/versions/${init.version}/infer`;
  return fetch(`${base}${route}`, {
    method: 'POST',
    headers: { 'content-type': init.contentType ?? 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: init.body,
  });
}

type Stored = { uri: string; digest: string };

/**
 * Records a one-row dataset version over objects the test stored itself (raw upload, certified
 * data, evidence manifest), as certification would: for tests of what governs a dataset's records
 * (reads, holds) without running a certification first.
 */
export async function insertDatasetRecord(
  db: Kysely<Database>,
  { name, manifest, raw, data, evidence }: { name: string; manifest: string; raw: Stored; data: Stored; evidence: Stored },
): Promise<void> {
  await db
    .insertInto('dataset_versions')
    .values({
      manifest_digest: sha256Digest(manifest),
      name,
      raw_uri: raw.uri,
      raw_sha256: raw.digest,
      certified_uri: data.uri,
      manifest_uri: evidence.uri,
      rows_total: 1,
      rows_accepted: 1,
      rows_excluded: 0,
      exclusions: JSON.stringify([]),
      workflow_id: `test-${name}`,
    })
    .execute();
}
