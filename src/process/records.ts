import fs from 'node:fs';
import path from 'node:path';

/**
 * Records of long-lived processes this machine runs (pid file, log, what each was started to serve):
 * written by `factory dev up`, read by production code that must tell whether a process of the stack
 * still runs (a training job's pid, Triton's start record for reconcile). Nothing here starts or stops.
 */

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

export function logTail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
