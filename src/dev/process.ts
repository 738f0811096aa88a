import { spawn } from 'node:child_process';
import { isAlive, ownedPid, type ProcessFiles } from '../process/records.ts';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export * from '../process/records.ts';

/**
 * Starts a long-lived process in its own process group, detached from the caller, with stdout and
 * stderr appended to its log file. The pid file marks it as ours: `down` stops only such processes.
 */
export function startDetached(files: ProcessFiles, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): number {
  fs.mkdirSync(path.dirname(files.pidFile), { recursive: true });
  fs.mkdirSync(path.dirname(files.logFile), { recursive: true });
  const log = fs.openSync(files.logFile, 'a');
  fs.writeSync(log, `\n--- ${new Date().toISOString()} start: ${command} ${args.join(' ')}\n`);
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', log, log],
    env: options.env ?? process.env,
    cwd: options.cwd,
  });
  fs.closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  child.unref();
  fs.writeFileSync(files.pidFile, `${child.pid}\n`);
  return child.pid;
}

/** SIGTERM to the whole process group, then SIGKILL after the grace period. */
export async function stopProcessGroup(files: ProcessFiles, graceMs = 10_000): Promise<boolean> {
  const pid = ownedPid(files);
  if (pid === undefined) return false;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      /* already gone */
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  signal('SIGKILL');
  while (isAlive(pid)) await sleep(50);
  fs.rmSync(files.pidFile, { force: true });
  fs.rmSync(files.startFile, { force: true });
  return true;
}

/** Polls `check` until it returns true; false when the deadline passes or the process died. */
export async function waitUntil(
  check: () => Promise<boolean>,
  { timeoutMs, intervalMs = 250, pid }: { timeoutMs: number; intervalMs?: number; pid?: number },
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (pid !== undefined && !isAlive(pid)) return false;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}
