import fs from 'node:fs';
import { projectRoot } from '../../config/env.ts';
import { CONSOLE_SERVICE } from '../../console/service.ts';
import { packInUse } from '../../process/worker-ready.ts';
import type { Component, StackContext } from '../component.ts';
import { nodeEntrypoint } from '../node.ts';
import { newestSourceMtime } from '../newest-source.mjs';
import { ownedPid, processFiles, startDetached } from '../process.ts';

function consoleUrl(ctx: StackContext): string {
  return `http://${ctx.env.FACTORY_CONSOLE_HOST}:${ctx.env.FACTORY_CONSOLE_PORT}`;
}

async function liveness(ctx: StackContext): Promise<{ policyPack?: string } | undefined> {
  try {
    const res = await fetch(`${consoleUrl(ctx)}/health`, { signal: AbortSignal.timeout(1_000) });
    const body = (await res.json()) as { service?: string; policyPack?: string };
    return res.ok && body.service === CONSOLE_SERVICE ? body : undefined;
  } catch {
    return undefined;
  }
}

/** The read-only console (src/console/): inventory, cards and lineage, pending approvals, KPIs, audit status. */
export const consoleComponent: Component = {
  name: 'console',
  startTimeoutMs: 60_000,
  hint: 'check that FACTORY_CONSOLE_PORT is free; the console log says why it stopped',
  endpoint: (ctx) => consoleUrl(ctx),
  binds: (ctx) => [{ host: ctx.env.FACTORY_CONSOLE_HOST, port: ctx.env.FACTORY_CONSOLE_PORT, variable: 'FACTORY_CONSOLE_PORT' }],
  /** Answering, on the pack in force and the current code (like the gateway): else `up` restarts it. */
  async healthy(ctx) {
    const live = await liveness(ctx);
    const pack = packInUse();
    if (live === undefined || ('digest' in pack && live.policyPack !== pack.digest)) return false;
    const files = processFiles(ctx.env.FACTORY_HOME, 'console');
    return ownedPid(files) === undefined || fs.statSync(files.pidFile).mtimeMs >= newestSourceMtime(projectRoot);
  },
  ready: async (ctx) => (await liveness(ctx)) !== undefined,
  async start(ctx) {
    const { command, args } = nodeEntrypoint('src/console/run.ts');
    startDetached(processFiles(ctx.env.FACTORY_HOME, 'console'), command, args, {
      env: { ...process.env, FACTORY_HOME: ctx.env.FACTORY_HOME, FACTORY_POLICY_PACK: packInUse().path },
    });
  },
  describe: async (ctx) => `read-only console ${consoleUrl(ctx)}`,
};
