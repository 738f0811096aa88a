import type { Env } from '../config/env.ts';

/** The gateway's address: FACTORY_GATEWAY_URL when it runs elsewhere, else the local one. */
export function gatewayUrl(env: Pick<Env, 'FACTORY_GATEWAY_URL' | 'FACTORY_GATEWAY_PORT'>): string {
  return env.FACTORY_GATEWAY_URL ?? `http://127.0.0.1:${env.FACTORY_GATEWAY_PORT}`;
}
