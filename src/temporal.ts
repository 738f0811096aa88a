import { Client, Connection } from '@temporalio/client';
import type { Env } from './config/env.ts';

export async function connectClient(env: Env): Promise<Client> {
  const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS, connectTimeout: 5_000, ...temporalCredentials(env) });
  return new Client({ connection, namespace: env.TEMPORAL_NAMESPACE });
}

/** The caller's credentials for a server with the JWT authorizer (TEMPORAL_API_KEY); none locally. */
export function temporalCredentials(env: Pick<Env, 'TEMPORAL_API_KEY'>): { apiKey?: string } {
  return env.TEMPORAL_API_KEY ? { apiKey: env.TEMPORAL_API_KEY } : {};
}
