import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

/** What the gateway serves for a model: its route row joined with the version's registry facts. */
export interface ServedRoute {
  modelName: string;
  modelVersionId: number;
  version: number;
  /** The version's state in the registry now: only `deployed` is served. */
  registryState: string;
  riskTier: string;
  tritonModel: string;
  tritonVersion: number;
  artifactDigest: string;
  routeState: string;
  switchedAt: string;
  switchedBy: string;
  reason: string;
}

export type RouteLookup = { kind: 'route'; route: ServedRoute } | { kind: 'no-route' } | { kind: 'unknown-model' };

/** A version a caller named (`/versions/{v}/`) other than the one the route serves: what the registry says of it. */
export interface NamedVersion {
  modelVersionId: number;
  version: number;
  registryState: string;
  artifactDigest: string;
  /** Why it was retired (the retirement's reason), when it was. */
  retiredReason?: string;
}

/** A named version of a model, with its retirement's reason (one indexed query: model_versions by name and version). */
export async function namedVersion(db: Kysely<Database>, modelName: string, version: number): Promise<NamedVersion | undefined> {
  const row = await db
    .selectFrom('model_versions as m')
    .leftJoin('retirements as t', 't.model_version_id', 'm.id')
    .select(['m.id', 'm.version', 'm.state', 'm.artifact_digest', 't.reason'])
    .where('m.model_name', '=', modelName)
    .where('m.version', '=', version)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    modelVersionId: row.id,
    version: row.version,
    registryState: row.state,
    artifactDigest: row.artifact_digest,
    ...(row.reason ? { retiredReason: row.reason } : {}),
  };
}

/** Routes of all models, or of one (status, trace). */
export async function servingRoutes(db: Kysely<Database>, modelName?: string): Promise<ServedRoute[]> {
  let q = db
    .selectFrom('gateway_routes as r')
    .innerJoin('model_versions as m', 'm.id', 'r.model_version_id')
    .select([
      'r.model_name',
      'r.model_version_id',
      'm.version',
      'm.state',
      'm.risk_tier',
      'r.triton_model',
      'r.triton_version',
      'r.artifact_digest',
      'r.state as route_state',
      'r.switched_at',
      'r.switched_by',
      'r.reason',
    ])
    .orderBy('r.model_name');
  if (modelName !== undefined) q = q.where('r.model_name', '=', modelName);
  const rows = await q.execute();
  return rows.map((r) => ({
    modelName: r.model_name,
    modelVersionId: r.model_version_id,
    version: r.version,
    registryState: r.state,
    riskTier: r.risk_tier,
    tritonModel: r.triton_model,
    tritonVersion: r.triton_version,
    artifactDigest: r.artifact_digest,
    routeState: r.route_state,
    switchedAt: new Date(r.switched_at).toISOString(),
    switchedBy: r.switched_by,
    reason: r.reason,
  }));
}

/**
 * The gateway's view of routes, cached for `ttlMs` per model (one indexed query per model per
 * second at most). `invalidate` (called on the database's route-change notification, see
 * route-events.ts) drops a model's entry at once; without notifications a switch is served within ttlMs.
 */
export class RouteTable {
  private readonly cache = new Map<string, { at: number; value: Promise<RouteLookup> }>();
  private readonly versions = new Map<string, { at: number; value: Promise<NamedVersion | undefined> }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly ttlMs = 1_000,
  ) {}

  lookup(modelName: string): Promise<RouteLookup> {
    const hit = this.cache.get(modelName);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.value;
    const value = this.load(modelName);
    this.cache.set(modelName, { at: Date.now(), value });
    value.catch(() => this.cache.delete(modelName));
    if (this.cache.size > 10_000) this.cache.clear();
    return value;
  }

  /** A version named by a caller, cached like routes (a retirement is refused within ttlMs). */
  version(modelName: string, version: number): Promise<NamedVersion | undefined> {
    const k = `${modelName}@${version}`;
    const hit = this.versions.get(k);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.value;
    const value = namedVersion(this.db, modelName, version);
    this.versions.set(k, { at: Date.now(), value });
    value.catch(() => this.versions.delete(k));
    if (this.versions.size > 10_000) this.versions.clear();
    return value;
  }

  /** Forget a model's cached route and named versions (or everything): its next request reads the rows again. */
  invalidate(modelName?: string): void {
    if (modelName === undefined) {
      this.cache.clear();
      this.versions.clear();
      return;
    }
    this.cache.delete(modelName);
    for (const k of this.versions.keys()) if (k.startsWith(`${modelName}@`)) this.versions.delete(k);
  }

  private async load(modelName: string): Promise<RouteLookup> {
    const [route] = await servingRoutes(this.db, modelName);
    if (route) return { kind: 'route', route };
    const known = await sql<{ one: number }>`SELECT 1 AS one FROM model_versions WHERE model_name = ${modelName} LIMIT 1`.execute(this.db);
    return known.rows.length ? { kind: 'no-route' } : { kind: 'unknown-model' };
  }
}
