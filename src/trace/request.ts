import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { servingRoutes, type ServedRoute } from '../gateway/routes.ts';
import { TraceNotFound, traceModel, type ModelTrace } from './trace.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One logged gateway request as `trace --request` shows it. */
export interface TracedRequest {
  requestId: string;
  receivedAt: string;
  clientRequestId: string | null;
  principal: string | null;
  useCase: string | null;
  keyId: string | null;
  method: string;
  route: string;
  model: string | null;
  version: number | null;
  artifactDigest: string | null;
  inputDigest: string | null;
  outputDigest: string | null;
  outputSummary: Record<string, unknown> | null;
  /** Where the payload is (read it with `factory request payload <id> --purpose …`, which records the read). */
  payloadUri: string | null;
  status: number;
  outcome: string;
  reason: string | null;
  latencyMs: number;
}

export interface RequestTrace {
  request: TracedRequest;
  /** The version that answered and its whole lineage; absent for a request refused before a version was chosen. */
  lineage?: ModelTrace;
  /** What the gateway serves for the model now. */
  servingNow?: ServedRoute;
}

/** The time a UUID v7 carries (its first 48 bits, milliseconds); undefined for other UUIDs. */
export function uuidV7Time(id: string): Date | undefined {
  if (!UUID.test(id) || id[14] !== '7') return undefined;
  return new Date(Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16));
}

export function parseRequestId(id: string): string {
  const lower = id.toLowerCase();
  if (!UUID.test(lower)) throw new TraceNotFound(`"${id.slice(0, 80)}" is not a request id (a UUID, as the gateway returns in x-request-id)`);
  return lower;
}

/** One logged request; by its id's time first (one partition, one index probe), else by the id alone. */
export async function findRequest(db: Kysely<Database>, id: string) {
  const requestId = parseRequestId(id);
  const at = uuidV7Time(requestId);
  const q = db.selectFrom('gateway_requests').selectAll().where('request_id', '=', requestId);
  return (at ? await q.where('received_at', '=', at).executeTakeFirst() : undefined) ?? (await q.limit(1).executeTakeFirst());
}

/** From a request id to the request, the version that answered, its lineage and what is served now. */
export async function traceRequest(db: Kysely<Database>, id: string, principalNames: Map<string, string> = new Map()): Promise<RequestTrace> {
  const r = await findRequest(db, id);
  if (!r) throw new TraceNotFound(`no logged request ${id.slice(0, 80)}`);
  const request: TracedRequest = {
    requestId: r.request_id,
    receivedAt: new Date(r.received_at).toISOString(),
    clientRequestId: r.client_request_id,
    principal: r.principal,
    useCase: r.use_case,
    keyId: r.key_id,
    method: r.method,
    route: r.route,
    model: r.model_name,
    version: r.model_version,
    artifactDigest: r.artifact_digest,
    inputDigest: r.input_digest,
    outputDigest: r.output_digest,
    outputSummary: r.output_summary,
    payloadUri: r.payload_uri,
    status: r.status,
    outcome: r.outcome,
    reason: r.reason,
    latencyMs: Math.round(r.latency_ms * 100) / 100,
  };
  const [lineage, serving] = await Promise.all([
    r.model_name && r.model_version !== null ? traceModel(db, `${r.model_name}@${r.model_version}`, principalNames) : undefined,
    r.model_name ? servingRoutes(db, r.model_name) : [],
  ]);
  return { request, ...(lineage ? { lineage } : {}), ...(serving[0] ? { servingNow: serving[0] } : {}) };
}

export function renderRequest(t: RequestTrace): string {
  const r = t.request;
  return [
    `request ${r.requestId}  ${r.receivedAt}  ${r.outcome} (${r.status})  ${r.latencyMs} ms`,
    `  caller       ${r.principal ?? '(unauthenticated)'}  use case ${r.useCase ?? '-'}  key ${r.keyId ?? '-'}`,
    `  route        ${r.method} ${r.route}${r.clientRequestId ? `  client id ${r.clientRequestId}` : ''}`,
    `  model        ${r.model ?? '-'}${r.version !== null ? `@${r.version}` : ''}  artifact ${r.artifactDigest ?? '-'}`,
    `  input        ${r.inputDigest ?? '-'}`,
    `  output       ${r.outputDigest ?? '-'}${r.outputSummary ? `  ${JSON.stringify(r.outputSummary).slice(0, 200)}` : ''}`,
    ...(r.payloadUri ? [`  payload      ${r.payloadUri}  (read: factory request payload ${r.requestId} --purpose "…", recorded)`] : []),
    ...(r.reason ? [`  reason       ${r.reason}`] : []),
    ...(t.servingNow
      ? [
          `  serving now  ${t.servingNow.modelName}@${t.servingNow.version} (${t.servingNow.routeState}, since ${t.servingNow.switchedAt}, ${t.servingNow.reason})`,
        ]
      : []),
  ].join('\n');
}
