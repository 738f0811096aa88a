import http from 'node:http';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { v7 as uuidv7 } from 'uuid';
import * as z from 'zod';
import { canonicalJson, sha256Hex } from '../audit/canonical.ts';
import type { Logger } from '../log.ts';
import { binRows, scoresOf } from '../monitoring/bins.ts';
import type { Caller, KeyRing } from './keys.ts';
import type { RequestLog, RequestRow } from './request-log.ts';
import type { NamedVersion, RouteTable, ServedRoute } from './routes.ts';
import type { GatewayMetrics } from '../metrics/registry.ts';

/** Stable reason codes of the gateway's errors (README, "Inference gateway"): clients may switch on them. */
export type RefusalReason =
  | 'unauthenticated'
  | 'rate-limited'
  | 'use-case-not-allowed'
  | 'risk-tier-not-allowed'
  | 'unknown-model'
  | 'not-served'
  | 'version-not-served'
  | 'rolled-back'
  | 'retired'
  | 'invalid-request'
  | 'body-too-large'
  | 'unsupported-media-type'
  | 'not-found'
  | 'triton-refused'
  | 'triton-unavailable'
  | 'log-unavailable';

class Refusal extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
}

const MAX_CLIENT_REQUEST_ID = 128;
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'letters, digits, _ . - (at most 128)');
const parameters = z
  .record(
    name,
    z.union([
      z
        .string()
        .max(256)
        .regex(/^[^\p{Cc}]*$/u, 'no control characters'),
      z.number(),
      z.boolean(),
    ]),
  )
  .optional();
const DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64'] as const;

/** A KServe v2 inference request (JSON, flattened numeric tensors; BYTES tensors are not served). */
export const inferRequestSchema = z
  .strictObject({
    id: z
      .string()
      .max(MAX_CLIENT_REQUEST_ID)
      .regex(/^[^\p{Cc}]*$/u, 'no control characters')
      .optional(),
    parameters,
    inputs: z
      .array(
        z
          .strictObject({
            name,
            shape: z.array(z.number().int().min(0).max(1_000_000)).min(1).max(8),
            datatype: z.enum(DATATYPES),
            parameters,
            data: z.array(z.union([z.number(), z.boolean()])).max(4_000_000),
          })
          .refine((t) => t.shape.reduce((a, b) => a * b, 1) === t.data.length, { message: 'data has not as many elements as the shape says' }),
      )
      .min(1)
      .max(16),
    outputs: z.array(z.strictObject({ name, parameters })).max(16).optional(),
  })
  .refine((r) => new Set(r.inputs.map((i) => i.name)).size === r.inputs.length, { message: 'an input name appears twice' });
export type InferRequest = z.infer<typeof inferRequestSchema>;

interface InferOutput {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

/** What a request carries through its hooks, for its log row. */
interface GatewayContext {
  requestId: string;
  receivedAt: Date;
  t0: number;
  clientRequestId: string | null;
  caller?: Caller;
  modelName?: string;
  route?: ServedRoute;
  /** A version the caller named that is not the one served: logged as the version asked for. */
  named?: NamedVersion;
  inputDigest?: string;
  outputs?: InferOutput[];
  payloadRequest?: unknown;
  refusal?: { reason: RefusalReason; message: string };
  /** For monitoring: each served row's training-decile bins per feature, and its score (never the values). */
  featureBins?: number[];
  scores?: number[];
  /** Health probes are answered, not logged. */
  unlogged?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    gw: GatewayContext;
  }
}

export interface GatewayDeps {
  keys: KeyRing;
  routes: RouteTable;
  log: RequestLog;
  tritonUrl: string;
  logger: Logger;
  maxBodyBytes: number;
  ratePerMinute: number;
  /** The digest of the pack it loaded (shown at /v2/health/live: `dev up` restarts a gateway whose pack changed). */
  policyPackDigest: string;
  /** Whether the database answers (readiness). */
  databaseReady: () => Promise<boolean>;
  /** Per version, the training split's decile edges per feature (src/monitoring/store.ts); none: requests are logged without bins. */
  distributions?: { featureEdges(modelVersionId: number): Promise<number[][] | undefined> };
  /** Prometheus metrics (src/metrics/): counted per logged request and served at GET /metrics, without a key like the health routes. */
  metrics?: GatewayMetrics;
}

/** A bounded summary of the outputs: per tensor its name, shape and first values. */
export function outputSummary(outputs: InferOutput[]): Record<string, unknown> {
  return {
    outputs: outputs.slice(0, 8).map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, head: o.data.slice(0, 16) })),
  };
}

function controlFree(text: string): boolean {
  return !/\p{Cc}/u.test(text);
}

/**
 * The inference gateway: KServe v2 HTTP in front of Triton. Each request is authenticated (API key
 * → principal and use case from the policy pack), rate-limited per key, authorised (the use case
 * names the model and its risk tier; the route is the version deployed), forwarded to Triton, and
 * logged (src/gateway/request-log.ts) before its answer leaves.
 */
export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    // Headers bounded by Node (8 KiB in all), bodies by bodyLimit; ids are ours (UUID v7), never the caller's.
    serverFactory: (handler) => http.createServer({ maxHeaderSize: 8192, requestTimeout: 30_000 }, handler),
    bodyLimit: deps.maxBodyBytes,
    maxParamLength: 200,
    genReqId: () => uuidv7(),
    requestIdHeader: false,
    logger: false,
    return503OnClosing: true,
  });
  // JSON only: the text/plain parser goes, so anything else is 415 (refused before its body is read).
  app.removeContentTypeParser(['text/plain']);
  app.decorateRequest('gw', null as unknown as GatewayContext);

  app.addHook('onRequest', async (req, reply) => {
    const header = req.headers['x-request-id'];
    const clientId = typeof header === 'string' && header.length <= MAX_CLIENT_REQUEST_ID && controlFree(header) ? header : null;
    req.gw = {
      requestId: String(req.id),
      receivedAt: new Date(Number.parseInt(String(req.id).replaceAll('-', '').slice(0, 12), 16)),
      t0: performance.now(),
      clientRequestId: clientId,
    };
    void reply.header('x-request-id', req.gw.requestId);
    // The model asked for is logged even when the caller is refused before anything else is read.
    const asked = (req.params as { name?: unknown } | undefined)?.name;
    if (typeof asked === 'string' && name.safeParse(asked).success) req.gw.modelName = asked;
    if (req.url.startsWith('/v2/health/') || (deps.metrics && req.url.split('?')[0] === '/metrics')) {
      req.gw.unlogged = true;
      return;
    }
    if (typeof header === 'string' && clientId === null) {
      throw new Refusal(400, 'invalid-request', `x-request-id must be at most ${MAX_CLIENT_REQUEST_ID} characters without control characters`);
    }
    const auth = deps.keys.authenticate(req.headers.authorization);
    if (!auth.ok) throw new Refusal(401, 'unauthenticated', auth.reason);
    req.gw.caller = auth.caller;
  });

  await app.register(rateLimit, {
    max: deps.ratePerMinute,
    timeWindow: 60_000,
    hook: 'onRequest',
    keyGenerator: (req) => req.gw?.caller?.keyId ?? req.ip,
    allowList: (req) => !!req.gw?.unlogged,
    errorResponseBuilder: (_req, ctx) => new Refusal(429, 'rate-limited', `more than ${ctx.max} requests in ${ctx.after} for this API key`),
  });

  app.setErrorHandler(async (err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    let refusal: Refusal;
    if (err instanceof Refusal) refusal = err;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') refusal = new Refusal(413, 'body-too-large', `the body is larger than ${deps.maxBodyBytes} bytes`);
    else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH')
      refusal = new Refusal(415, 'unsupported-media-type', 'send the request as application/json');
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
      refusal = new Refusal(err.statusCode, 'invalid-request', `the request is not valid JSON or not a valid request (${err.code ?? 'bad request'})`);
    else {
      deps.logger.error({ err: err.message, requestId: req.gw?.requestId }, 'gateway error');
      refusal = new Refusal(500, 'triton-unavailable', 'the gateway failed to answer; retry later');
    }
    if (req.gw) req.gw.refusal = { reason: refusal.reason, message: refusal.message };
    return reply.code(refusal.statusCode).send({ error: refusal.message, reason: refusal.reason, request_id: req.gw?.requestId });
  });

  app.setNotFoundHandler(async (req) => {
    throw new Refusal(404, 'not-found', `no route ${req.method} ${req.url.slice(0, 100)}: see the gateway's routes in README.md`);
  });

  // Every answer waits for its log row (group commit): a crash loses no acknowledged request.
  app.addHook('onSend', async (req, reply, payload) => {
    const gw = req.gw;
    if (!gw || gw.unlogged) return payload;
    const row = logRow(req, reply.statusCode);
    try {
      await deps.log.record(row, gw.outputs ? { request_id: gw.requestId, request: gw.payloadRequest, response: gw.outputs } : undefined);
      deps.metrics?.request(row);
    } catch (err) {
      deps.logger.error({ err: (err as Error).message, requestId: gw.requestId }, 'request log unavailable: not answered');
      void reply.code(503);
      return JSON.stringify({
        error: 'the request could not be logged, so it is not answered; retry later',
        reason: 'log-unavailable',
        request_id: gw.requestId,
      });
    }
    return payload;
  });

  app.get('/v2/health/live', async () => ({ live: true, service: 'ai-factory-gateway', policyPack: deps.policyPackDigest }));
  app.get('/v2/health/ready', async (_req, reply) => {
    const [db, triton] = await Promise.all([deps.databaseReady(), tritonReady(deps.tritonUrl)]);
    return reply.code(db && triton ? 200 : 503).send({ ready: db && triton, database: db, triton });
  });
  if (deps.metrics) {
    const registry = deps.metrics.registry;
    app.get('/metrics', async (_req, reply) => reply.header('content-type', registry.contentType).send(await registry.metrics()));
  }
  app.get('/v2', async () => ({ name: 'ai-factory-gateway', version: '1', extensions: [] }));

  const modelParams = z.object({
    name,
    version: z
      .string()
      .regex(/^[1-9]\d{0,8}$/, 'a version number')
      .optional(),
  });
  type Params = z.infer<typeof modelParams>;

  /** The route that may answer this caller for this model (and version), or a Refusal. */
  async function authorise(req: FastifyRequest): Promise<ServedRoute> {
    const parsed = modelParams.safeParse(req.params);
    if (!parsed.success) throw new Refusal(400, 'invalid-request', `invalid model name or version: ${parsed.error.issues[0]?.message}`);
    const { name: model, version } = parsed.data as Params;
    const caller = req.gw.caller!;
    req.gw.modelName = model;
    if (!caller.useCase.models.includes(model)) {
      throw new Refusal(403, 'use-case-not-allowed', `use case ${caller.useCase.name} may not call model ${model}`);
    }
    const found = await deps.routes.lookup(model);
    if (found.kind === 'unknown-model') throw new Refusal(404, 'unknown-model', `no model ${model} in the registry`);
    if (found.kind === 'no-route') throw new Refusal(409, 'not-served', `model ${model} has no deployed version: nothing approved and deployed is served`);
    const route = found.route;
    req.gw.route = route;
    // A retired model answers 410 whatever version is named: nothing of it is served any more.
    if (route.routeState === 'retired') {
      throw new Refusal(410, 'retired', `model ${model} is retired (version ${route.version}, since ${route.switchedAt}): ${route.reason}`);
    }
    if (route.registryState !== 'deployed') {
      throw new Refusal(409, 'not-served', `model ${model} version ${route.version} is ${route.registryState} in the registry, not deployed`);
    }
    if (!caller.useCase.riskTiers.includes(route.riskTier as never)) {
      throw new Refusal(
        403,
        'risk-tier-not-allowed',
        `use case ${caller.useCase.name} may not call ${route.riskTier}-risk models (${model} version ${route.version})`,
      );
    }
    if (version !== undefined && Number(version) !== route.version) throw await namedVersionRefusal(req, model, Number(version), route);
    return route;
  }

  /** Why a named version other than the served one is refused: retired (410), rolled back, or not served (with its registry state). */
  async function namedVersionRefusal(req: FastifyRequest, model: string, version: number, route: ServedRoute): Promise<Refusal> {
    const named = await deps.routes.version(model, version);
    const served = `version ${route.version} is served`;
    if (!named) {
      req.gw.route = undefined; // logged as no version: the one asked for does not exist
      return new Refusal(409, 'version-not-served', `model ${model} has no version ${version}; ${served}`);
    }
    req.gw.named = named;
    if (named.registryState === 'retired') {
      return new Refusal(410, 'retired', `model ${model} version ${version} is retired${named.retiredReason ? `: ${named.retiredReason}` : ''}; ${served}`);
    }
    if (named.registryState === 'rolled-back') {
      return new Refusal(409, 'rolled-back', `model ${model} version ${version} was rolled back and is not served; ${served}`);
    }
    if (named.registryState !== 'deployed') {
      return new Refusal(
        409,
        'version-not-served',
        `model ${model} version ${version} is ${named.registryState} in the registry, not approved and deployed; ${served}`,
      );
    }
    return new Refusal(409, 'version-not-served', `model ${model} version ${version} is not served; ${served}`);
  }

  const infer = async (req: FastifyRequest, reply: FastifyReply) => {
    const route = await authorise(req);
    const parsed = inferRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Refusal(400, 'invalid-request', `not a KServe v2 inference request: ${issue?.path.join('.') || '(body)'}: ${issue?.message}`);
    }
    const body = parsed.data;
    req.gw.inputDigest = `sha256:${sha256Hex(canonicalJson(body.inputs))}`;
    const edges = deps.distributions?.featureEdges(route.modelVersionId);
    const res = await forward(deps.tritonUrl, `/v2/models/${encodeURIComponent(route.tritonModel)}/versions/${route.tritonVersion}/infer`, 'POST', body);
    const answer = res.json as { outputs?: InferOutput[]; id?: string };
    const outputs = answer.outputs ?? [];
    req.gw.outputs = outputs;
    req.gw.payloadRequest = body;
    // Monitoring: the bins of the served rows against the version's training deciles, and their scores.
    const featureEdges = edges ? await edges : undefined;
    const input = body.inputs[0]!;
    if (featureEdges && body.inputs.length === 1) req.gw.featureBins = binRows(featureEdges, input.shape, input.data);
    if (outputs.length === 1 && Array.isArray(outputs[0]!.shape) && Array.isArray(outputs[0]!.data))
      req.gw.scores = scoresOf(outputs[0]!.shape, outputs[0]!.data);
    return reply.send({
      model_name: route.modelName,
      model_version: String(route.version),
      ...(body.id !== undefined ? { id: body.id } : {}),
      outputs,
    });
  };

  const metadata = async (req: FastifyRequest, reply: FastifyReply) => {
    const route = await authorise(req);
    const res = await forward(deps.tritonUrl, `/v2/models/${encodeURIComponent(route.tritonModel)}/versions/${route.tritonVersion}`, 'GET');
    const meta = res.json as Record<string, unknown>;
    return reply.send({ ...meta, name: route.modelName, versions: [String(route.version)], artifact_digest: route.artifactDigest });
  };

  const ready = async (req: FastifyRequest, reply: FastifyReply) => {
    const route = await authorise(req);
    const ok = await fetch(`${deps.tritonUrl}/v2/models/${encodeURIComponent(route.tritonModel)}/versions/${route.tritonVersion}/ready`, {
      signal: AbortSignal.timeout(2_000),
    }).then(
      (r) => r.ok,
      () => false,
    );
    return reply.code(ok ? 200 : 503).send({ ready: ok });
  };

  app.post('/v2/models/:name/infer', infer);
  app.post('/v2/models/:name/versions/:version/infer', infer);
  app.get('/v2/models/:name', metadata);
  app.get('/v2/models/:name/versions/:version', metadata);
  app.get('/v2/models/:name/ready', ready);
  app.get('/v2/models/:name/versions/:version/ready', ready);
  return app;
}

async function tritonReady(base: string): Promise<boolean> {
  try {
    const res = await fetch(`${base}/v2/health/ready`, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

async function forward(base: string, route: string, method: 'GET' | 'POST', body?: unknown): Promise<{ json: unknown }> {
  let res: Response;
  try {
    res = await fetch(`${base}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new Refusal(502, 'triton-unavailable', `Triton did not answer: ${(err as Error).message.slice(0, 200)}`);
  }
  const text = await res.text();
  if (res.status >= 400 && res.status < 500) {
    // Triton's own words about the request (a wrong input name or shape), bounded and without control characters.
    let why = text;
    try {
      why = String((JSON.parse(text) as { error?: unknown }).error ?? text);
    } catch {
      /* not JSON */
    }
    throw new Refusal(400, 'triton-refused', `Triton refused the request: ${why.replace(/\p{Cc}/gu, ' ').slice(0, 300)}`);
  }
  if (!res.ok) throw new Refusal(502, 'triton-unavailable', `Triton answered ${res.status}`);
  return { json: JSON.parse(text) };
}

function logRow(req: FastifyRequest, status: number): RequestRow {
  const gw = req.gw;
  const route = gw.route;
  const served = status < 400 && gw.outputs !== undefined;
  return {
    request_id: gw.requestId,
    received_at: gw.receivedAt,
    client_request_id: gw.clientRequestId,
    principal: gw.caller?.principal ?? null,
    use_case: gw.caller?.useCase.name ?? null,
    key_id: gw.caller?.keyId ?? null,
    method: req.method.slice(0, 10),
    route: (req.url.split('?')[0] ?? '').slice(0, 200),
    model_name: gw.modelName ?? null,
    // A refused request naming another version than the served one is logged as the version it asked for.
    model_version: gw.named?.version ?? route?.version ?? null,
    model_version_id: gw.named?.modelVersionId ?? route?.modelVersionId ?? null,
    artifact_digest: gw.named?.artifactDigest ?? route?.artifactDigest ?? null,
    input_digest: gw.inputDigest ?? null,
    output_digest: served ? `sha256:${sha256Hex(canonicalJson(gw.outputs))}` : null,
    output_summary: served ? JSON.stringify(outputSummary(gw.outputs!)) : null,
    payload_uri: null,
    status,
    outcome: status < 400 ? 'served' : status < 500 ? 'refused' : 'failed',
    reason: gw.refusal ? `${gw.refusal.reason}: ${gw.refusal.message}`.slice(0, 500) : null,
    latency_ms: performance.now() - gw.t0,
    feature_bins: served ? (gw.featureBins ?? null) : null,
    scores: served ? (gw.scores ?? null) : null,
  };
}
