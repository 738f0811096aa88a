import type { DataClassification } from '../domain/classification.ts';
import type { Zone } from '../policy/schema.ts';

/** What placement needs to know about a job: the classification of the data it reads, and any GPU type it asks for. */
export interface PlacementJob {
  classification: DataClassification;
  /** A GPU type the job needs (e.g. "H100"); absent: any zone's GPUs will do. */
  gpuType?: string;
}

export interface ZoneVerdict {
  zone: string;
  location: Zone['location'];
  reason: string;
}

export interface PlacementDecision {
  /** Zones that may run the job, in the pack's order (on-prem zones first when the pack lists them first). */
  allowed: ZoneVerdict[];
  /** Zones that may not, each with why. */
  refused: ZoneVerdict[];
}

/**
 * Which zones may run `job`, and why each may or may not. Pure (no I/O, no clock): the lifecycle
 * workflow calls it, and a zone's worker checks its own zone with the same rule (zoneMayRun).
 * A zone may run a job when it may hold the job's data classification and, if the job names a GPU type,
 * that type is attested for it. Burst zones get nothing more than what the pack allows them: a pack that
 * lists phi for a burst zone is the pack's decision, reviewed like code.
 */
export function placeJob(job: PlacementJob, zones: readonly Zone[]): PlacementDecision {
  const decision: PlacementDecision = { allowed: [], refused: [] };
  for (const zone of zones) {
    const why = zoneRefusal(job, zone);
    const verdict = { zone: zone.name, location: zone.location };
    if (why) decision.refused.push({ ...verdict, reason: why });
    else
      decision.allowed.push({
        ...verdict,
        reason: `${zone.location} zone ${zone.name} may hold ${job.classification} data${job.gpuType ? ` and has ${job.gpuType} GPUs attested` : ''}`,
      });
  }
  return decision;
}

/** Why `zone` may not run `job`; undefined when it may. */
export function zoneRefusal(job: PlacementJob, zone: Zone): string | undefined {
  if (!zone.classifications.includes(job.classification)) {
    return `${zone.location} zone ${zone.name} may hold only ${zone.classifications.join(', ')} data, not ${job.classification}`;
  }
  if (job.gpuType && !zone.gpuTypes.some((t) => t.toLowerCase() === job.gpuType!.toLowerCase())) {
    return `${zone.name} has no attested ${job.gpuType} GPUs (attested: ${zone.gpuTypes.join(', ') || 'none'})`;
  }
  return undefined;
}

/**
 * A zone's own check of a job that reached its queue (defence in depth: the workflow already placed it).
 * A zone the pack does not list may run nothing.
 */
export function zoneMayRun(zoneName: string, job: PlacementJob, zones: readonly Zone[]): { ok: true } | { ok: false; reason: string } {
  const zone = zones.find((z) => z.name === zoneName);
  if (!zone) return { ok: false, reason: `zone ${zoneName} is not in the policy pack's zones (${zones.map((z) => z.name).join(', ')})` };
  const why = zoneRefusal(job, zone);
  return why ? { ok: false, reason: why } : { ok: true };
}

/**
 * The zone to schedule on now: the first allowed zone with a live worker. Undefined when none has one;
 * `waitingReason` then says why the job waits (refused zones that do have workers are named, so an
 * operator sees that the free burst zone was not an option).
 */
export function chooseZone(decision: PlacementDecision, liveWorkers: Readonly<Record<string, number>>): ZoneVerdict | undefined {
  return decision.allowed.find((z) => (liveWorkers[z.zone] ?? 0) > 0);
}

export function waitingReason(job: PlacementJob, decision: PlacementDecision, liveWorkers: Readonly<Record<string, number>>): string {
  const allowed = decision.allowed.map((z) => z.zone);
  const idleRefused = decision.refused.filter((z) => (liveWorkers[z.zone] ?? 0) > 0);
  const refusedPart = idleRefused.length ? `; ${idleRefused.map((z) => `${z.zone} has workers but may not run it (${z.reason})`).join('; ')}` : '';
  if (!allowed.length) return `no zone may run ${job.classification} data${refusedPart}`;
  return `waiting for a worker on ${allowed.join(' or ')} (the zone${allowed.length > 1 ? 's' : ''} allowed for ${job.classification} data): none is polling${refusedPart}`;
}
