import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import { type Env, loadEnv } from '../src/config/env.ts';
import { createEnvDb } from '../src/db/connect.ts';
import type { Database } from '../src/db/schema.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { createS3 } from '../src/storage/s3.ts';
import { connectClient } from '../src/temporal.ts';

export interface ActivityDeps {
  env: Env;
  db: Kysely<Database>;
  s3: S3Client;
  log: Logger;
}

let deps: ActivityDeps | undefined;

/** One database pool and S3 client per worker process, made on first use. */
export function activityDeps(): ActivityDeps {
  if (!deps) {
    const env = loadEnv();
    deps = { env, db: createEnvDb(env, env.FACTORY_WORKER_DB_POOL, 'worker'), s3: createS3(env), log: createLogger('activities', env.LOG_LEVEL) };
  }
  return deps;
}

let temporal: Promise<Client> | undefined;

/** A Temporal client for activities that read workflows (the history archiver); one per worker process, made on first use. */
export function activityTemporalClient(): Promise<Client> {
  temporal ??= connectClient(activityDeps().env).catch((err: unknown) => {
    temporal = undefined;
    throw err;
  });
  return temporal;
}

export async function closeActivityDeps(): Promise<void> {
  const t = temporal;
  temporal = undefined;
  if (t) await t.then((c) => c.connection.close()).catch(() => undefined);
  if (!deps) return;
  const d = deps;
  deps = undefined;
  d.s3.destroy();
  await d.db.destroy();
}
