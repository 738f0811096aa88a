import net from 'node:net';
import { ComponentStartError, StackRefusal, type Bind, type Component, type ComponentStatus, type StackContext } from './component.ts';
import { components as defaultComponents } from './components/index.ts';
import { logTail, ownedPid, processFiles, readStartRecord, stopProcessGroup, waitUntil, writeStartRecord } from './process.ts';

export type StackStatus = Record<string, ComponentStatus>;

async function statusOf(ctx: StackContext, c: Component): Promise<ComponentStatus> {
  const healthy = await c.healthy(ctx);
  const managed = ownedPid(processFiles(ctx.env.FACTORY_HOME, c.name)) !== undefined;
  const detail = await c.describe?.(ctx);
  const facts = await c.facts?.(ctx).catch(() => undefined);
  return { endpoint: c.endpoint(ctx), healthy, managed, ...(detail ? { detail } : {}), ...(facts ? { facts } : {}) };
}

export async function stackStatus(ctx: StackContext, components = defaultComponents): Promise<StackStatus> {
  const entries = await Promise.all(components.map(async (c) => [c.name, await statusOf(ctx, c)] as const));
  return Object.fromEntries(entries);
}

/** Hosts a server started here can listen on. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Whether something already listens on the address: we try to listen there ourselves. */
export async function portHeld(b: Pick<Bind, 'host' | 'port'>): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' || err.code === 'EACCES'));
    probe.listen({ host: b.host.replace(/^\[|\]$/g, ''), port: b.port, exclusive: true }, () => probe.close(() => resolve(false)));
  });
}

/**
 * A process of ours that runs but does not answer may be replaced only where it was started: when
 * the configuration now names another endpoint (a typo, a changed port), stopping it would take a
 * working server away and put nothing in its place. Such an `up` is refused instead.
 */
function refuseIfMoved(ctx: StackContext, c: Component): void {
  const files = processFiles(ctx.env.FACTORY_HOME, c.name);
  const pid = ownedPid(files);
  if (pid === undefined) return;
  const rec = readStartRecord(files, pid);
  if (rec && rec.endpoint !== c.endpoint(ctx)) {
    const setting = c.binds?.(ctx)[0]?.variable ?? 'the configuration';
    throw new StackRefusal(
      c.name,
      `nothing answers at ${c.endpoint(ctx)}, but our ${c.name} (pid ${pid}) runs at ${rec.endpoint}: ${setting} names another endpoint than the one it was started on. ` +
        `It was left running. Fix ${setting} (a typo?), or run \`factory dev down\` first to move it.`,
    );
  }
}

/**
 * Everything `up` can find wrong before it touches anything: a broken configuration, an endpoint
 * that moved away from a running server of ours, a host that is not this machine, a port held by
 * a stranger. Throws a StackRefusal; nothing has been started or stopped by then.
 */
async function preflight(ctx: StackContext, components: Component[]): Promise<void> {
  components: for (const c of components) {
    await c.validate?.(ctx);
    if (await c.healthy(ctx)) continue;
    refuseIfMoved(ctx, c);
    if (!c.start || ownedPid(processFiles(ctx.env.FACTORY_HOME, c.name)) !== undefined) continue;
    for (const b of c.binds?.(ctx) ?? []) {
      if (!isLoopback(b.host)) {
        throw new StackRefusal(
          c.name,
          `nothing answers at ${c.endpoint(ctx)}, and \`dev up\` starts servers only on this machine's loopback (127.0.0.1, ::1, localhost), not on ${b.host} (${b.variable}). Start that server where it runs, or fix ${b.variable}.`,
        );
      }
      if (await portHeld(b)) {
        // A server of ours on a loaded machine can miss one health check: ask again before calling it a stranger.
        if (await answersWithin(ctx, c, 15_000)) continue components;
        throw new StackRefusal(
          c.name,
          `port ${b.port} on ${b.host} (${b.variable}) is held by a process that is not our ${c.name}: it does not answer as ${c.name} and we hold no pid file for it. Stop that process, or choose another port in ${b.variable}.`,
        );
      }
    }
  }
}

async function answersWithin(ctx: StackContext, c: Component, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    if (await c.healthy(ctx)) return true;
  }
  return false;
}

export interface UpResult {
  status: StackStatus;
  started: string[];
  found: string[];
  millis: number;
}

/**
 * Brings every component up, in order: one found answering is reused, one not answering is started
 * and waited for. First a preflight refuses, before anything is touched, what cannot work (see
 * `preflight`): a running component is never stopped unless it can be put back where it was.
 * Each then gets its idempotent preparation (migrations, buckets, retention). A
 * component that does not come up is reported with its log tail and a hint instead of hanging.
 */
export async function stackUp(
  ctx: StackContext,
  { components = defaultComponents, onProgress }: { components?: Component[]; onProgress?: (msg: string) => void } = {},
): Promise<UpResult> {
  const t0 = Date.now();
  const started: string[] = [];
  const found: string[] = [];
  await preflight(ctx, components);
  for (const c of components) {
    const files = processFiles(ctx.env.FACTORY_HOME, c.name);
    if (await c.healthy(ctx)) {
      found.push(c.name);
      onProgress?.(`${c.name}: already running at ${c.endpoint(ctx)}`);
    } else {
      if (!c.start) throw new ComponentStartError(c.name, `not reachable at ${c.endpoint(ctx)}`, '', c.hint);
      // A process of ours that runs but does not answer (half-started, wedged, stale code) is
      // replaced, but only where it was started (checked again: time passed since the preflight).
      refuseIfMoved(ctx, c);
      await stopProcessGroup(files, 5_000);
      onProgress?.(`${c.name}: starting…`);
      const t = Date.now();
      try {
        await c.start(ctx);
      } catch (err) {
        throw new ComponentStartError(c.name, (err as Error).message, logTail(files.logFile), c.hint);
      }
      const pid = ownedPid(files);
      if (pid !== undefined) writeStartRecord(files, { pid, endpoint: c.endpoint(ctx), startedAt: new Date().toISOString() });
      const ok = await waitUntil(() => (c.ready ? c.ready(ctx) : c.healthy(ctx)), { timeoutMs: c.startTimeoutMs, pid: ownedPid(files) });
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
