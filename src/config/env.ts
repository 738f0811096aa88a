import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as z from 'zod';
import { ConfigError } from './errors.ts';

/**
 * The repository root: defaults that name files resolve against it, not the caller's cwd. Found by
 * walking up to package.json, since this module runs from src/config/ (tsx) and from the CLI bundle
 * in build/cli/v<n>/, which are not equally deep.
 */
export const projectRoot = findProjectRoot(path.dirname(fileURLToPath(import.meta.url)));

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, '../..');
  }
}

const port = z.coerce.number().int().min(1).max(65535);
const hostPort = z.string().regex(/^[\w.-]+:\d+$/, 'expected host:port');

/**
 * The whole environment the factory reads, with local defaults. One schema is both the type and
 * the validation: a bad value fails fast and names the variable.
 */
export const envSchema = z.object({
  FACTORY_HOME: z.string().default(path.join(projectRoot, '.factory')),
  FACTORY_VENV: z.string().default(path.join(projectRoot, '.venv')),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),

  TEMPORAL_ADDRESS: hostPort.default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_UI_PORT: port.default(8233),
  /** Prefixes every task queue (an isolated set of workers, e.g. a test's). Workflows follow their control queue. */
  FACTORY_TASK_QUEUE_PREFIX: z
    .string()
    .regex(/^[\w.-]*$/)
    .default(''),
  TEMPORAL_RETENTION_DAYS: z.coerce.number().int().min(30).default(30),
  /**
   * A bearer token (JWT) for a Temporal server with the JWT authorizer (README, "Production identity
   * of the caller"): sent as `authorization: Bearer …` by the workers and the CLI. From a secret store
   * or the environment, never the repository; unset: no credentials (the local stack).
   */
  TEMPORAL_API_KEY: z.string().min(1).optional(),

  /** When unset, `factory dev up` serves an embedded PGlite on FACTORY_PGLITE_PORT. */
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  FACTORY_PGLITE_PORT: port.default(5433),
  /** The workers' connection (role factory_worker); unset: DATABASE_URL's server as factory_worker, no password. */
  FACTORY_APP_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  /** The CLI's read-only connection (role factory_reader); unset: DATABASE_URL's server as factory_reader. */
  FACTORY_READER_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),

  S3_ENDPOINT: z.url().default('http://127.0.0.1:9000'),
  S3_REGION: z.string().default('us-east-1'),
  /** Local defaults only work against the embedded S3 server; production sets real credentials. */
  AWS_ACCESS_KEY_ID: z.string().min(1).default('factory-local'),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).default('factory-local-secret'),
  S3_BUCKET_PREFIX: z
    .string()
    .regex(/^[a-z0-9-]*$/, 'lowercase letters, digits and dashes')
    .default('factory-'),

  /** Set when Triton runs elsewhere (docker-compose); else the local server on TRITON_HTTP_PORT. */
  TRITON_URL: z.url().optional(),
  /** The model repository the deploy activity writes; Triton must read the same directory. */
  TRITON_MODEL_REPOSITORY: z.string().optional(),
  TRITON_HTTP_PORT: port.default(8000),
  TRITON_GRPC_PORT: port.default(8001),
  TRITON_METRICS_PORT: port.default(8002),

  /**
   * Where datasets and schemas may be read from (colon-separated absolute paths); unset: the
   * project's datasets/ and $FACTORY_HOME/landing. Anything else must come from s3://<landing bucket>/.
   */
  FACTORY_DATA_ROOTS: z.string().optional(),
  /** Largest raw dataset accepted (bytes); a larger one is refused before it is copied. */
  FACTORY_DATASET_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(1024 * 1024 * 1024),
  /**
   * Database connections of one worker process's activities. Appends serialise on the audit chain's
   * lock anyway; the pool is sized so a burst of lifecycles waits for that lock, not for a connection
   * (50 at once timed out with 4: docs/benchmarks.md).
   */
  FACTORY_WORKER_DB_POOL: z.coerce.number().int().min(1).max(100).default(10),
  /**
   * Where each stage's OpenLineage RunEvents (START, COMPLETE, FAIL) go: `file` appends JSON lines to
   * FACTORY_OPENLINEAGE_FILE (default $FACTORY_HOME/openlineage/events.jsonl), `http` POSTs each event to
   * FACTORY_OPENLINEAGE_URL (Marquez-compatible: <base>/api/v1/lineage), `off` emits nothing.
   */
  FACTORY_OPENLINEAGE_TRANSPORT: z.enum(['off', 'file', 'http']).default('file'),
  FACTORY_OPENLINEAGE_FILE: z.string().optional(),
  FACTORY_OPENLINEAGE_URL: z.url().optional(),
  /** The OpenLineage namespace of the factory's jobs (one per deployment). */
  FACTORY_OPENLINEAGE_NAMESPACE: z
    .string()
    .regex(/^[\w.:/-]{1,200}$/)
    .default('ai-factory'),
  /** Training and evaluation jobs one gpu-onprem worker runs at once. */
  FACTORY_GPU_MAX_CONCURRENT_JOBS: z.coerce.number().int().min(1).max(64).default(2),
  /**
   * Model loads one serving worker asks Triton for at once. Triton loads each in a Python stub and
   * answers its repository index behind them: dozens at once (50 lifecycles deploying together) made
   * every index call time out. The rest wait their turn in the activity, heartbeating.
   */
  FACTORY_TRITON_MAX_CONCURRENT_LOADS: z.coerce.number().int().min(1).max(16).default(2),

  /** The inference gateway (src/gateway/): its port on loopback, or its URL when it runs elsewhere (docker-compose). */
  FACTORY_GATEWAY_PORT: port.default(8010),
  /** The address it listens on (0.0.0.0 in a container). */
  FACTORY_GATEWAY_HOST: z.string().default('127.0.0.1'),
  FACTORY_GATEWAY_URL: z.url().optional(),
  /** The read-only console (`factory console`, src/console/): its port and the address it listens on (loopback by default). */
  FACTORY_CONSOLE_PORT: port.default(8020),
  FACTORY_CONSOLE_HOST: z.string().default('127.0.0.1'),
  /** API keys beside the pack's (hashes only, same format: `factory gateway key create`); `dev up` puts its dev key here. */
  FACTORY_GATEWAY_KEYS_FILE: z.string().optional(),
  /**
   * An API key of the gateway (a service principal's, `factory gateway key create`) that the serving
   * workers use to see a rollback's first correct inference THROUGH the gateway (the RTO's end). Its
   * use case must list the models (and their `--shadow` drill routes). Unset: Triton is asked directly.
   */
  FACTORY_GATEWAY_SERVICE_KEY: z.string().optional(),
  /** Largest request body the gateway reads (bytes); a larger one is refused with 413 and logged. */
  FACTORY_GATEWAY_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  /**
   * When set, a worker process serves Prometheus metrics at http://FACTORY_METRICS_HOST:<port>/metrics
   * (activity durations and failures, lifecycles, the KPI gauges): one port per process. Unset: off.
   */
  FACTORY_METRICS_PORT: port.optional(),
  FACTORY_METRICS_HOST: z.string().min(1).max(255).default('127.0.0.1'),
  /** The KPI gauges are recomputed at most this often (seconds); scrapes in between read the cache. */
  FACTORY_METRICS_KPI_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  /** Requests one caller (API key) may make per minute before 429. */
  FACTORY_GATEWAY_RATE_LIMIT: z.coerce.number().int().min(1).default(6000),
  /**
   * How this worker runs training and evaluation jobs: `local` (a process group on this machine) or
   * `slurm` (a batch job through sbatch; FACTORY_HOME/jobs must be on storage the nodes share).
   */
  FACTORY_JOB_LAUNCHER: z.enum(['local', 'slurm']).default('local'),
  /** The Slurm partition jobs are submitted to; unset: the cluster's default. */
  FACTORY_SLURM_PARTITION: z
    .string()
    .regex(/^[\w.-]{1,64}$/, 'a partition name')
    .optional(),
  /** The GPUs a Slurm job asks for, as GRES (`gpu:1`, `gpu:a100:2`); unset: none. */
  FACTORY_SLURM_GRES: z
    .string()
    .regex(/^gpu(:[\w.-]{1,64})?:\d{1,3}$/, 'a GPU GRES request such as gpu:1 or gpu:a100:2')
    .optional(),
  /** A Slurm job's time limit (sbatch --time: minutes, H:MM:SS or D-HH:MM:SS); unset: the partition's. */
  FACTORY_SLURM_TIME_LIMIT: z
    .string()
    .regex(/^(\d{1,3}-)?\d{1,5}(:\d{2}){0,2}$/, 'minutes, H:MM:SS or D-HH:MM:SS')
    .optional(),

  /** The factory's Ed25519 signing key as PEM text (injected by a secret manager); never in the repo or the database. */
  FACTORY_SIGNING_KEY: z.string().optional(),
  /** Else a PEM key file readable only by its owner; `factory dev up` makes $FACTORY_HOME/keys/factory-signing.pem. */
  FACTORY_SIGNING_KEY_FILE: z.string().optional(),
  /** Minutes between the schedule's signed checkpoints of the audit chain (none written while the head stands still). */
  FACTORY_AUDIT_CHECKPOINT_MINUTES: z.coerce.number().int().min(1).max(1440).default(5),
  /** How often the retention job (schedule retention-sweep) deletes what policy allows, in hours. */
  FACTORY_RETENTION_SWEEP_HOURS: z.coerce.number().int().min(1).max(8760).default(24),
  /** Public keys verification also trusts (keys rotated out, or the one an examiner was handed): PEM blocks and/or ssh-ed25519 lines. */
  FACTORY_TRUSTED_KEYS_FILE: z.string().optional(),
});

export type Env = z.infer<typeof envSchema>;

export { ConfigError };

/** Parses an environment (process.env by default); throws a ConfigError naming each bad variable. */
export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const keys = Object.keys(envSchema.shape);
  const relevant = Object.fromEntries(keys.filter((k) => source[k] !== undefined && source[k] !== '').map((k) => [k, source[k]]));
  const parsed = envSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}=${JSON.stringify(relevant[String(i.path[0])])}: ${i.message}`);
    throw new ConfigError(`invalid environment:\n${lines.join('\n')}\nFix or unset these variables and try again.`);
  }
  return parsed.data;
}
