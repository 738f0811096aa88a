import http from 'node:http';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Kysely } from 'kysely';
import { buildCard, renderCardHtml } from '../cards/card.ts';
import { loadCardData } from '../cards/load.ts';
import type { Env } from '../config/env.ts';
import type { Database } from '../db/schema.ts';
import { lifecycleInputSchema } from '../domain/lifecycle.ts';
import { modelInventory } from '../inventory/inventory.ts';
import type { Logger } from '../log.ts';
import type { LoadedPolicyPack } from '../policy/pack.ts';
import type { PublicFactoryKey } from '../signing/factory-key.ts';
import { computeKpis } from '../kpi/kpis.ts';
import { DEFAULT_SINCE, KpiInputError, parseSince } from '../kpi/window.ts';
import { TraceNotFound, traceModel } from '../trace/trace.ts';
import { CONSOLE_SERVICE } from './service.ts';
import { type PendingApproval, auditStatus, pendingApprovals, requestCounts } from './data.ts';
import { CONSOLE_CSS, approvalsPage, auditPage, errorPage, inventoryPage, kpisPage, modelPage } from './pages.ts';

/** Lifecycle histories the KPI page cross-checks against the audit trail per load (`factory kpi` checks 200). */
export const KPI_HISTORY_CHECKS = 25;

/** Versions listed on the inventory page; `factory inventory --json` lists all. */
export const INVENTORY_SHOWN_MAX = 1_000;

/** The console's own pages: styles from itself only, no script at all, framed by itself only (the card). */
const PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";
/** The card is the document `factory card --format html` writes, with its inline stylesheet (its own meta CSP says the same). */
const CARD_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

const FAVICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1d3557"/></svg>';

export interface ConsoleDeps {
  /** A read-only connection (factory_reader) where the database has one. */
  db: Kysely<Database>;
  env: Env;
  policy: LoadedPolicyPack;
  /** A Temporal client, connected on first use; throws when Temporal cannot be reached. */
  temporal: () => Promise<Client>;
  s3: S3Client;
  evidenceBucket: string;
  chainName: string;
  /** The keys checkpoints are verified with; throws when none can be loaded (the page says why). */
  trustedKeys: () => PublicFactoryKey[];
  logger: Logger;
  now?: () => Date;
}

class NotFound extends Error {
  override name = 'NotFound';
}

const MODEL = lifecycleInputSchema.shape.modelName;
const VERSION = /^[1-9]\d{0,8}$/;

/** A model name and version from a URL: hostile. Anything that is not a valid name and a plain version number is "not found". */
function parseRef(params: unknown): { model: string; version: number } {
  const p = params as { model?: unknown; version?: unknown };
  const model = MODEL.safeParse(p.model);
  if (!model.success || typeof p.version !== 'string' || !VERSION.test(p.version)) throw new NotFound('no such model version');
  return { model: model.data, version: Number(p.version) };
}

/** Where the Temporal Web UI shows one workflow: the decision is made there (signals), never here. */
export function temporalWorkflowUrl(
  env: Pick<Env, 'TEMPORAL_ADDRESS' | 'TEMPORAL_UI_PORT' | 'TEMPORAL_NAMESPACE'>,
  w: Pick<PendingApproval, 'workflowId' | 'runId'>,
): string {
  const host = env.TEMPORAL_ADDRESS.replace(/:\d+$/, '');
  return `http://${host}:${env.TEMPORAL_UI_PORT}/namespaces/${encodeURIComponent(env.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(w.workflowId)}/${encodeURIComponent(w.runId)}/history`;
}

function html(reply: FastifyReply, body: string, status = 200) {
  return reply.code(status).type('text/html; charset=utf-8').send(body);
}

/**
 * The read-only console (issue 11 item 5): server-rendered pages over the registry, the audit trail and
 * Temporal's visibility store. GET and HEAD only: every other method is refused with 405 before any
 * route runs, so nothing here can change a fact (decisions stay in Temporal).
 */
export async function buildConsole(deps: ConsoleDeps): Promise<FastifyInstance> {
  const now = deps.now ?? (() => new Date());
  const app = Fastify({
    serverFactory: (handler) => http.createServer({ maxHeaderSize: 8192, requestTimeout: 30_000 }, handler),
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 100 },
    logger: false,
    return503OnClosing: true,
  });
  const names = new Map(deps.policy.pack.principals.map((p) => [p.id.toLowerCase(), p.name] as [string, string]));

  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return reply.code(405).header('allow', 'GET, HEAD').type('text/plain; charset=utf-8').send('read-only console: only GET and HEAD are served\n');
    }
  });
  app.addHook('onSend', async (req, reply, payload) => {
    const card = /\/card\.html$/.test(req.url.split('?')[0] ?? '');
    void reply.header('content-security-policy', card ? CARD_CSP : PAGE_CSP);
    void reply.header('referrer-policy', 'no-referrer');
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('x-frame-options', 'SAMEORIGIN');
    void reply.header('cross-origin-opener-policy', 'same-origin');
    void reply.header('cache-control', 'no-store');
    return payload;
  });
  app.setErrorHandler(async (err: Error & { statusCode?: number }, req, reply) => {
    if (err instanceof NotFound || err instanceof TraceNotFound) return html(reply, errorPage(404, 'No such model version.'), 404);
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return html(reply, errorPage(err.statusCode, 'Bad request.'), err.statusCode);
    deps.logger.error({ err: err.message, url: req.url.slice(0, 200) }, 'console error');
    return html(reply, errorPage(500, 'The console could not answer this page; its log says why.'), 500);
  });
  app.setNotFoundHandler(async (_req, reply) => html(reply, errorPage(404, 'No such page.'), 404));

  app.get('/health', async () => ({ service: CONSOLE_SERVICE, policyPack: deps.policy.digest }));
  app.get('/console.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(CONSOLE_CSS));
  app.get('/favicon.svg', async (_req, reply) => reply.type('image/svg+xml').send(FAVICON));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());

  app.get('/', async (_req, reply) => {
    const at = now();
    const entries = await modelInventory(deps.db, deps.policy.pack, at);
    return html(reply, inventoryPage(entries, { shownMax: INVENTORY_SHOWN_MAX, policyVersion: deps.policy.pack.version, now: at }));
  });

  app.get('/models/:model/:version', async (req, reply) => {
    const { model, version } = parseRef(req.params);
    const trace = await traceModel(deps.db, `${model}@${version}`, names);
    return html(reply, modelPage(trace, await requestCounts(deps.db, model, version)));
  });

  const card = async (params: unknown) => {
    const { model, version } = parseRef(params);
    return buildCard(await loadCardData(deps.db, deps.env, `${model}@${version}`, deps.policy, now(), names));
  };
  app.get('/models/:model/:version/card.html', async (req, reply) => html(reply, renderCardHtml(await card(req.params))));
  app.get('/models/:model/:version/card.json', async (req, reply) =>
    reply.type('application/json; charset=utf-8').send(JSON.stringify(await card(req.params))),
  );

  app.get('/approvals', async (_req, reply) => {
    let listed;
    try {
      listed = await pendingApprovals(await deps.temporal());
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, 'Temporal did not answer the approvals page');
      return html(
        reply,
        approvalsPage({ error: (err as Error).message.slice(0, 300) }, () => ''),
        503,
      );
    }
    return html(
      reply,
      approvalsPage(listed, (w) => temporalWorkflowUrl(deps.env, w)),
    );
  });

  app.get('/kpis', async (req, reply) => {
    const raw = (req.query as { since?: unknown }).since;
    const sinceText = typeof raw === 'string' && raw.length > 0 ? raw : DEFAULT_SINCE;
    let since: Date;
    try {
      since = parseSince(sinceText, now());
    } catch (err) {
      if (err instanceof KpiInputError) return html(reply, errorPage(400, 'since: an ISO date (2026-11-01) or date-time, or 30d / 12h before now.'), 400);
      throw err;
    }
    // Histories cross-checked as `factory kpi` does, at most KPI_HISTORY_CHECKS of them per load; live ones only when Temporal answers.
    const client = await deps.temporal().catch(() => undefined);
    const report = await computeKpis(deps.db, {
      since,
      now: now(),
      policy: deps.policy,
      histories: { s3: deps.s3, ...(client ? { client } : {}) },
      maxHistoryChecks: KPI_HISTORY_CHECKS,
    });
    return html(reply, kpisPage(report, { sinceText, historiesChecked: !!client }));
  });

  app.get('/audit', async (_req, reply) => {
    let keys;
    try {
      keys = deps.trustedKeys();
    } catch (err) {
      return html(reply, auditPage({ location: '', invalid: [], error: `no trusted key to verify checkpoints with: ${(err as Error).message}`, millis: 0 }));
    }
    const status = await auditStatus(
      deps.db,
      deps.s3,
      deps.evidenceBucket,
      deps.chainName,
      keys.map((k) => k.publicKey),
    );
    return html(reply, auditPage(status));
  });

  return app;
}
