import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ROUTE_CHANNEL } from '../db/migrations/0012_rollbacks.ts';
import type { Logger } from '../log.ts';

/**
 * Listens for route changes (migration 0012's trigger NOTIFYs `gateway_routes_changed` with the model
 * name at COMMIT) and calls `onChange(model)`, so a rollback's switch is served from the next request
 * instead of after the cache's TTL. On one dedicated connection; when it breaks, `onChange()` (no
 * model: everything may have changed unheard) and reconnects with backoff, while the TTL keeps the
 * cache honest in between. `stop()` ends it.
 */
export function listenForRouteChanges(url: string, onChange: (model?: string) => void, log: Logger): { stop(): Promise<void> } {
  let stopped = false;
  let client: pg.Client | undefined;
  const loop = async () => {
    for (let delay = 250; !stopped; delay = Math.min(delay * 2, 10_000)) {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
      client = c;
      const ended = new Promise<void>((resolve) => {
        c.on('end', resolve);
        c.on('error', (err) => {
          log.warn({ err: err.message }, 'route change listener lost its connection; the route cache falls back to its TTL');
          resolve();
        });
      });
      try {
        await c.connect();
        c.on('notification', (n) => {
          if (n.channel === ROUTE_CHANNEL) onChange(n.payload || undefined);
        });
        await c.query(`LISTEN ${ROUTE_CHANNEL}`);
        delay = 250;
        onChange(); // anything switched while we were not listening
        await ended;
      } catch (err) {
        if (!stopped) log.warn({ err: (err as Error).message }, 'route change listener cannot connect; retrying');
      }
      await c.end().catch(() => undefined);
      if (!stopped) await sleep(delay);
    }
  };
  const done = loop();
  return {
    async stop() {
      stopped = true;
      await client?.end().catch(() => undefined);
      await done;
    },
  };
}
