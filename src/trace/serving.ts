import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { type RouteRef, type ServingEvent, type VersionServing, modelServingState, servingHistory, versionServingState } from '../domain/serving-state.ts';

/** How many steps of a model's history are shown (the newest). */
export const SERVING_HISTORY_LIMIT = 50;

/** A model's serving state, one version's (when asked), and its deployment history. */
export interface ServingView {
  model: VersionServing & { version?: number };
  /** The version asked about (trace model@v, status of its lifecycle). */
  version?: VersionServing & { number: number };
  history: ServingEvent[];
}

/**
 * Reads what the serving state is derived from (src/domain/serving-state.ts): the routes of the
 * model and those naming its versions, deployments, retirements and live rollbacks. Four
 * indexed queries, each bounded.
 */
export async function servingView(
  db: Kysely<Database>,
  modelName: string,
  version?: { number: number; registryState: Database['model_versions']['state'] },
): Promise<ServingView> {
  const [routes, deployments, retirements, rollbacks] = await Promise.all([
    db
      .selectFrom('gateway_routes as r')
      .innerJoin('model_versions as v', 'v.id', 'r.model_version_id')
      .select(['r.model_name', 'r.state', 'r.reason', 'v.version', 'v.model_name as version_model'])
      .where((eb) => eb.or([eb('r.model_name', '=', modelName), eb('v.model_name', '=', modelName)]))
      .limit(100)
      .execute(),
    db
      .selectFrom('deployments as d')
      .innerJoin('model_versions as v', 'v.id', 'd.model_version_id')
      .select(['d.id', 'd.deployed_at', 'v.version'])
      .where('v.model_name', '=', modelName)
      .orderBy('d.deployed_at', 'desc')
      .limit(SERVING_HISTORY_LIMIT)
      .execute(),
    db
      .selectFrom('retirements')
      .select(['version', 'retired_at', 'requested_by', 'reason'])
      .where('model_name', '=', modelName)
      .orderBy('retired_at', 'desc')
      .limit(SERVING_HISTORY_LIMIT)
      .execute(),
    // Live rollbacks (a drill never touches the live route): the version taken off and the one served again.
    db
      .selectFrom('rollbacks')
      .select(['id', 'from_version', 'to_version', 'switched_at', 'requested_by', 'reason', 'trigger'])
      .where('model_name', '=', modelName)
      .where('trigger', '!=', 'drill')
      .orderBy('switched_at', 'desc')
      .limit(SERVING_HISTORY_LIMIT)
      .execute(),
  ]);
  const refs: RouteRef[] = routes
    .filter((r) => r.version_model === modelName)
    .map((r) => ({ modelName: r.model_name, state: r.state, version: r.version, reason: r.reason }));
  const own = refs.find((r) => r.modelName === modelName);
  const iso = (d: Date | string) => new Date(d).toISOString();
  const history = servingHistory(
    [
      ...deployments.map((d): ServingEvent => ({ at: iso(d.deployed_at), kind: 'deployed', version: d.version, by: d.id })),
      ...rollbacks.flatMap((r): ServingEvent[] => [
        { at: iso(r.switched_at), kind: 'rolled-back', version: r.from_version, by: r.requested_by, reason: `${r.reason} (${r.trigger}; to v${r.to_version})` },
        { at: iso(r.switched_at), kind: 'served-again', version: r.to_version, by: `rollback ${r.id}` },
      ]),
      ...retirements.map((r): ServingEvent => ({ at: iso(r.retired_at), kind: 'retired', version: r.version, by: r.requested_by, reason: r.reason })),
    ],
    SERVING_HISTORY_LIMIT,
  );
  return {
    model: modelServingState(modelName, own),
    ...(version
      ? { version: { number: version.number, ...versionServingState({ modelName, version: version.number, registryState: version.registryState }, refs) } }
      : {}),
    history,
  };
}

/** The serving lines of `trace` and `status`. */
export function renderServing(modelName: string, s: ServingView): string[] {
  return [
    'serving',
    ...(s.version ? [`  ${modelName}@${s.version.number}  ${s.version.state}  (${s.version.reason})`] : []),
    `  model        ${s.model.state}${s.model.version !== undefined ? ` v${s.model.version}` : ''}  (${s.model.reason})`,
    ...(s.history.length
      ? s.history.map((e) => `  ${e.at}  ${e.kind.padEnd(11)} v${e.version}${e.by ? `  by ${e.by}` : ''}${e.reason ? `  "${e.reason}"` : ''}`)
      : ['  (no deployments)']),
  ];
}
