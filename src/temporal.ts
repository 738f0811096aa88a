import { Client, Connection } from '@temporalio/client';
import type { Env } from './config/env.ts';

export async function connectClient(env: Env): Promise<Client> {
  const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS, connectTimeout: 5_000 });
  return new Client({ connection, namespace: env.TEMPORAL_NAMESPACE });
}
