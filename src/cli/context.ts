import type { Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import { type Env, loadEnv } from '../config/env.ts';
import { createEnvDb } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import { CliError, EXIT } from './output.ts';

export async function withTemporal<T>(fn: (client: Client, env: Env) => Promise<T>): Promise<T> {
  const env = loadEnv();
  let client: Client;
  try {
    const { connectClient } = await import('../temporal.ts');
    client = await connectClient(env);
  } catch (err) {
    throw new CliError(`cannot reach Temporal at ${env.TEMPORAL_ADDRESS}: ${(err as Error).message}`, EXIT.unhealthy, 'start the stack: npx factory dev up');
  }
  try {
    return await fn(client, env);
  } finally {
    await client.connection.close();
  }
}

/** The CLI reads as factory_reader; a command that must record something (a payload read) asks for the worker role. */
export async function withDb<T>(fn: (db: Kysely<Database>, env: Env) => Promise<T>, role: 'reader' | 'worker' = 'reader'): Promise<T> {
  const env = loadEnv();
  const db = createEnvDb(env, 2, role);
  try {
    return await fn(db, env);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
      throw new CliError(`cannot reach Postgres: ${(err as Error).message}`, EXIT.unhealthy, 'start the stack with `npx factory dev up` or check DATABASE_URL');
    }
    throw err;
  } finally {
    await db.destroy();
  }
}
