import fs from 'node:fs';
import path from 'node:path';
import type { Env } from '../config/env.ts';
import type { RunEvent } from './openlineage.ts';

/** The file events go to when FACTORY_OPENLINEAGE_TRANSPORT=file (the default). */
export function openLineageFile(env: Pick<Env, 'FACTORY_HOME' | 'FACTORY_OPENLINEAGE_FILE'>): string {
  return env.FACTORY_OPENLINEAGE_FILE ?? path.join(env.FACTORY_HOME, 'openlineage', 'events.jsonl');
}

/** Marquez and other OpenLineage HTTP consumers take events at <base>/api/v1/lineage; a full endpoint URL is kept as given. */
export function lineageEndpoint(url: string): string {
  return /\/api\/v1\/lineage\/?$/.test(url) ? url : `${url.replace(/\/+$/, '')}/api/v1/lineage`;
}

export class LineageTransportError extends Error {
  override name = 'LineageTransportError';
}

/**
 * Sends one event where the environment says. A file gets one JSON line per event, appended in one
 * write (O_APPEND: the workers of one host share the file); HTTP gets one POST with a 10 s bound.
 */
export async function sendRunEvent(env: Env, event: RunEvent): Promise<void> {
  const body = JSON.stringify(event);
  switch (env.FACTORY_OPENLINEAGE_TRANSPORT) {
    case 'off':
      return;
    case 'file': {
      const file = openLineageFile(env);
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      fs.appendFileSync(file, `${body}\n`, { mode: 0o600 });
      return;
    }
    case 'http': {
      if (!env.FACTORY_OPENLINEAGE_URL) throw new LineageTransportError('FACTORY_OPENLINEAGE_TRANSPORT=http needs FACTORY_OPENLINEAGE_URL');
      const res = await fetch(lineageEndpoint(env.FACTORY_OPENLINEAGE_URL), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new LineageTransportError(`the lineage endpoint answered ${res.status}`);
      await res.body?.cancel();
      return;
    }
  }
}
