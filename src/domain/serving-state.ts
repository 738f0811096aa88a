import type { ModelState } from './model-state.ts';

/**
 * Where a model version stands after its approval (issue 9 item 7), derived from the registry state
 * and the gateway routes that name it; never stored, so it cannot disagree with them.
 *
 * - `live`: the model's own gateway route names it and it is `deployed`: callers get its answers.
 * - `shadow`: only a drill's shadow route names it (never live traffic).
 * - `rolled-back`: a rollback took it off the live route (registry `rolled-back`).
 * - `retired`: retired (registry `retired`): unloaded, the gateway answers 410.
 * - `not-served`: anything else (awaiting approval, rejected, failed, or deployed but superseded by
 *   a later version); `reason` says which.
 */
export const SERVING_STATES = ['live', 'shadow', 'rolled-back', 'retired', 'not-served'] as const;
export type ServingState = (typeof SERVING_STATES)[number];

/** A gateway route as far as serving state is concerned (gateway_routes joined with the version it names). */
export interface RouteRef {
  /** The route's model name: the model's own for live traffic, a drill's own name for a shadow route. */
  modelName: string;
  state: 'live' | 'shadow' | 'retired';
  version: number;
  reason?: string;
}

export interface VersionServing {
  state: ServingState;
  reason: string;
}

/** The serving state of `modelName@version`, in registry state `registryState`, given the routes of its model and those naming it. */
export function versionServingState(v: { modelName: string; version: number; registryState: ModelState }, routes: readonly RouteRef[]): VersionServing {
  const own = routes.find((r) => r.modelName === v.modelName);
  const ownNamesIt = own?.version === v.version;
  if (v.registryState === 'retired') return { state: 'retired', reason: ownNamesIt && own?.reason ? own.reason : 'retired in the registry' };
  if (v.registryState === 'rolled-back') return { state: 'rolled-back', reason: 'rolled back: the live route no longer serves it' };
  if (own && ownNamesIt) {
    if (own.state === 'retired') return { state: 'retired', reason: own.reason ?? 'the route is retired' };
    if (own.state === 'live' && v.registryState === 'deployed') return { state: 'live', reason: `the gateway serves ${v.modelName}@${v.version}` };
  }
  const shadow = routes.find((r) => r.state === 'shadow' && r.version === v.version && r.modelName !== v.modelName);
  if (shadow) return { state: 'shadow', reason: `served only on the shadow route ${shadow.modelName}` };
  if (v.registryState === 'deployed') {
    return {
      state: 'not-served',
      reason: own ? `superseded: the gateway serves ${v.modelName}@${own.version} (${own.state})` : 'deployed, but no gateway route names it',
    };
  }
  return { state: 'not-served', reason: `${v.registryState} in the registry` };
}

/** The serving state of a model: what its own route serves now. */
export function modelServingState(modelName: string, own: RouteRef | undefined): VersionServing & { version?: number } {
  if (!own) return { state: 'not-served', reason: `no gateway route for ${modelName}: nothing deployed` };
  if (own.state === 'retired') return { state: 'retired', version: own.version, reason: own.reason ?? 'retired' };
  if (own.state === 'shadow') return { state: 'shadow', version: own.version, reason: 'shadow route' };
  return { state: 'live', version: own.version, reason: `serves ${modelName}@${own.version}` };
}

/** One step of a model's deployment history. */
export interface ServingEvent {
  /** UTC ISO time. */
  at: string;
  /** `served-again`: a rollback put this (earlier) version back on the live route. */
  kind: 'deployed' | 'rolled-back' | 'served-again' | 'retired';
  version: number;
  /** Who or what made it (a deployment id, a principal). */
  by?: string;
  reason?: string;
}

const KIND_ORDER: Record<ServingEvent['kind'], number> = { deployed: 0, 'rolled-back': 1, 'served-again': 2, retired: 3 };

/**
 * A model's deployment history in time order (deployments, rollbacks, retirements), oldest first;
 * events at the same instant in the order deploy → roll back → serve again → retire, then by version. At most
 * `limit` (the newest kept).
 */
export function servingHistory(events: readonly ServingEvent[], limit = 100): ServingEvent[] {
  const sorted = [...events].sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || a.version - b.version);
  return sorted.slice(Math.max(0, sorted.length - limit));
}
