import type { Client } from '@temporalio/client';
import { sql } from 'kysely';
import type { Env } from '../config/env.ts';
import { auditChainName, createEnvDb } from '../db/connect.ts';
import type { Logger } from '../log.ts';
import { loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { loadTrustedKeys } from '../signing/trusted-keys.ts';
import { bucket, createS3 } from '../storage/s3.ts';
import { connectClient } from '../temporal.ts';
import { buildConsole } from './server.ts';

export interface RunningConsole {
  url: string;
  close(): Promise<void>;
}

/**
 * Starts the console on FACTORY_CONSOLE_HOST:FACTORY_CONSOLE_PORT (loopback by default) as the
 * read-only database role (factory_reader, FACTORY_READER_DATABASE_URL): even a bug here cannot write.
 * Used by `factory console` (foreground) and src/console/run.ts (the process `factory dev up` starts).
 */
export async function startConsole(env: Env, logger: Logger): Promise<RunningConsole> {
  const policy = loadPolicyPack(policyPackPath());
  const db = createEnvDb(env, 4, 'reader');
  await sql`SELECT 1`.execute(db);
  const s3 = createS3(env);
  let client: Client | undefined;
  const temporal = async () => {
    if (client) return client;
    client = await connectClient(env);
    return client;
  };
  const app = await buildConsole({
    db,
    env,
    policy,
    temporal,
    s3,
    evidenceBucket: bucket(env, 'evidence'),
    chainName: auditChainName(env),
    trustedKeys: () => loadTrustedKeys(env),
    logger,
  });
  await app.listen({ host: env.FACTORY_CONSOLE_HOST, port: env.FACTORY_CONSOLE_PORT });
  const url = `http://${env.FACTORY_CONSOLE_HOST.includes(':') ? `[${env.FACTORY_CONSOLE_HOST}]` : env.FACTORY_CONSOLE_HOST}:${env.FACTORY_CONSOLE_PORT}`;
  logger.info({ url, policyPack: policy.digest }, 'console listening');
  return {
    url,
    async close() {
      await app.close();
      await client?.connection.close().catch(() => undefined);
      s3.destroy();
      await db.destroy();
    },
  };
}
