import { ComponentStartError, type Component, type ComponentStatus, type StackContext } from './component.ts';
import { components as defaultComponents } from './components/index.ts';
import { logTail, ownedPid, processFiles, stopProcessGroup, waitUntil } from './process.ts';

export type StackStatus = Record<string, ComponentStatus>;

async function statusOf(ctx: StackContext, c: Component): Promise<ComponentStatus> {
  const healthy = await c.healthy(ctx);
  const managed = ownedPid(processFiles(ctx.env.FACTORY_HOME, c.name)) !== undefined;
  const detail = await c.describe?.(ctx);
  return { endpoint: c.endpoint(ctx), healthy, managed, ...(detail ? { detail } : {}) };
}

export async function stackStatus(ctx: StackContext, components = defaultComponents): Promise<StackStatus> {
  const entries = await Promise.all(components.map(async (c) => [c.name, await statusOf(ctx, c)] as const));
  return Object.fromEntries(entries);
}

export interface UpResult {
  status: StackStatus;
  started: string[];
  found: string[];
  millis: number;
}

/**
 * Brings every component up, in order: one found answering is reused, one not answering is started
 * and waited for. Each then gets its idempotent preparation (migrations, buckets, retention). A
 * component that does not come up is reported with its log tail and a hint instead of hanging.
 */
export async function stackUp(
  ctx: StackContext,
  { components = defaultComponents, onProgress }: { components?: Component[]; onProgress?: (msg: string) => void } = {},
): Promise<UpResult> {
  const t0 = Date.now();
  const started: string[] = [];
  const found: string[] = [];
  for (const c of components) {
    const files = processFiles(ctx.env.FACTORY_HOME, c.name);
    if (await c.healthy(ctx)) {
      found.push(c.name);
      onProgress?.(`${c.name}: already running at ${c.endpoint(ctx)}`);
    } else {
      if (!c.start) throw new ComponentStartError(c.name, `not reachable at ${c.endpoint(ctx)}`, '', c.hint);
      // A process of ours that runs but does not answer (half-started, wedged) is replaced.
      await stopProcessGroup(files, 5_000);
      onProgress?.(`${c.name}: starting…`);
      const t = Date.now();
      try {
        await c.start(ctx);
      } catch (err) {
        throw new ComponentStartError(c.name, (err as Error).message, logTail(files.logFile), c.hint);
      }
      const ok = await waitUntil(() => c.healthy(ctx), { timeoutMs: c.startTimeoutMs, pid: ownedPid(files) });
      if (!ok) {
        const why = ownedPid(files) === undefined ? 'exited during start' : `not healthy after ${c.startTimeoutMs / 1000}s`;
        throw new ComponentStartError(c.name, why, logTail(files.logFile), `${c.hint} (log: ${files.logFile})`);
      }
      started.push(c.name);
      onProgress?.(`${c.name}: up in ${((Date.now() - t) / 1000).toFixed(1)}s at ${c.endpoint(ctx)}`);
    }
    try {
      await c.prepare?.(ctx);
    } catch (err) {
      throw new ComponentStartError(c.name, `preparation failed: ${(err as Error).message}`, logTail(files.logFile), c.hint);
    }
  }
  return { status: await stackStatus(ctx, components), started, found, millis: Date.now() - t0 };
}

/**
 * Stops only what `up` started (components with a pid file of ours). The last component (the
 * workers, which use all the others) stops first; the rest then stop together.
 */
export async function stackDown(
  ctx: StackContext,
  { components = defaultComponents, onProgress }: { components?: Component[]; onProgress?: (msg: string) => void } = {},
): Promise<string[]> {
  const stop = async (c: Component) => {
    const stopped = await stopProcessGroup(processFiles(ctx.env.FACTORY_HOME, c.name));
    if (stopped) onProgress?.(`${c.name}: stopped`);
    return stopped ? [c.name] : [];
  };
  const [dependent, ...rest] = [...components].reverse();
  if (!dependent) return [];
  const first = await stop(dependent);
  return [...first, ...(await Promise.all(rest.map(stop))).flat()];
}
