import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where a stack component keeps its pid file and log. */
export interface ProcessFiles {
  pidFile: string;
  logFile: string;
  /** What it was started to serve (StartRecord): `up` never replaces a process it cannot put back. */
  startFile: string;
}

export function processFiles(home: string, name: string): ProcessFiles {
  return {
    pidFile: path.join(home, 'run', `${name}.pid`),
    logFile: path.join(home, 'logs', `${name}.log`),
    startFile: path.join(home, 'run', `${name}.started.json`),
  };
}

export interface StartRecord {
  pid: number;
  endpoint: string;
  startedAt: string;
}

export function writeStartRecord(files: ProcessFiles, record: StartRecord): void {
  fs.writeFileSync(files.startFile, `${JSON.stringify(record)}\n`);
}

/** The record of the process that runs now; undefined when missing, unreadable or of another pid. */
export function readStartRecord(files: ProcessFiles, pid: number): StartRecord | undefined {
  try {
    const rec = JSON.parse(fs.readFileSync(files.startFile, 'utf8')) as Partial<StartRecord>;
    return rec.pid === pid && typeof rec.endpoint === 'string' ? (rec as StartRecord) : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readPid(files: ProcessFiles): number | undefined {
  try {
    const pid = Number(fs.readFileSync(files.pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pid of a process we started that still runs; a stale pid file is removed. */
export function ownedPid(files: ProcessFiles): number | undefined {
  const pid = readPid(files);
  if (pid === undefined) return undefined;
  if (isAlive(pid)) return pid;
  fs.rmSync(files.pidFile, { force: true });
  return undefined;
}

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

export function logTail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
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
