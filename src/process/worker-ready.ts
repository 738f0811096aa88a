import fs from 'node:fs';
import path from 'node:path';
import { loadPolicyPack, policyPackPath } from '../policy/pack.ts';

/** The policy pack a process resolves (FACTORY_POLICY_PACK, else policies/default.yaml), as loaded now. */
export type PackInUse = { path: string; digest: string } | { path: string; error: string };

/**
 * A pack's error for people: the YAML parser quotes the offending line after a blank line; the pack
 * may hold names we do not print into logs and terminals, so only the position is kept.
 */
export function packErrorSummary(message: string): string {
  return message.split('\n\n')[0]!.replace(/:\s*$/, '');
}

export function packInUse(file: string = policyPackPath()): PackInUse {
  const resolved = path.resolve(file);
  try {
    return { path: resolved, digest: loadPolicyPack(resolved).digest };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const error = e.code ? `cannot read ${resolved}: ${e.code}` : packErrorSummary(e.message);
    return { path: resolved, error };
  }
}

/**
 * What the dev worker process writes once all its workers poll (FACTORY_WORKER_READY_FILE): its pid
 * and the policy pack it loaded at start. `dev up` restarts workers whose pack is not the one in force,
 * and the CLI says when its own pack is not the workers'.
 */
export interface WorkerReadyRecord {
  pid: number;
  policyPack?: PackInUse;
}

export function writeWorkerReady(file: string, pid = process.pid): void {
  const record: WorkerReadyRecord = { pid, policyPack: packInUse() };
  fs.writeFileSync(file, `${JSON.stringify(record)}\n`);
}

export function readWorkerReady(file: string): WorkerReadyRecord | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
  // Workers started before the record had a pack wrote their bare pid.
  if (/^\d+$/.test(text)) return { pid: Number(text) };
  try {
    const rec = JSON.parse(text) as WorkerReadyRecord;
    return Number.isInteger(rec.pid) ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** The ready file of the dev workers under FACTORY_HOME (written by workers/run.ts). */
export function workerReadyFile(home: string): string {
  return path.join(home, 'run', 'workers.ready.pid');
}

export interface PackAgreement {
  cli: PackInUse;
  workers?: PackInUse;
  agrees: boolean;
  /** Set when they differ (or the CLI's pack is broken): what to tell the person. */
  warning?: string;
}

function sameDigest(a: PackInUse | undefined, b: PackInUse | undefined): boolean {
  return !!a && !!b && 'digest' in a && 'digest' in b && a.digest === b.digest && a.path === b.path;
}

/**
 * Compares the pack this process resolves with the one the running dev workers loaded. Decisions are
 * made by the workers' pack; a CLI that reads another one (a FACTORY_POLICY_PACK only in this shell,
 * an edit since the workers started) must say so rather than imply it is in force.
 */
export function packAgreement(home: string, cliPack: PackInUse = packInUse()): PackAgreement {
  const workers = readWorkerReady(workerReadyFile(home))?.policyPack;
  if ('error' in cliPack) return { cli: cliPack, workers, agrees: false, warning: `the policy pack ${cliPack.path} is broken: ${cliPack.error}` };
  if (!workers)
    return { cli: cliPack, agrees: false, warning: 'the dev workers have not reported their policy pack (not running, or started by an older factory)' };
  if (sameDigest(cliPack, workers)) return { cli: cliPack, workers, agrees: true };
  const theirs = 'digest' in workers ? `${workers.path} (${workers.digest.slice(0, 19)}…)` : `${workers.path} (broken: ${workers.error})`;
  return {
    cli: cliPack,
    workers,
    agrees: false,
    warning: `this shell's policy pack ${cliPack.path} (${cliPack.digest.slice(0, 19)}…) is not the one the workers loaded: ${theirs}. Decisions follow the workers' pack; \`factory dev up\` restarts them with this one.`,
  };
}
