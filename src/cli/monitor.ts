import os from 'node:os';
import type { Command } from 'commander';
import {
  ACKNOWLEDGE_SIGNAL,
  MONITOR_STATUS_QUERY,
  MONITOR_WORKFLOW,
  type MonitorStatus,
  acknowledgeSchema,
  monitorInputSchema,
  monitorWorkflowId,
} from '../domain/monitor.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { servingRoutes } from '../gateway/routes.ts';
import { loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { type RiskTier, durationMs } from '../policy/schema.ts';
import { withDb, withTemporal } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

const MODEL = /^[a-z][a-z0-9_-]{1,62}$/;

function checkModel(model: string): void {
  if (!MODEL.test(model)) throw new CliError('the model name is lowercase letters, digits, - and _, starting with a letter', EXIT.usage);
}

/** Windows and reviews of a model, from the database (no worker needed). */
async function recorded(model: string, limit: number) {
  return withDb(async (db) => {
    const windows = await db
      .selectFrom('monitoring_windows as w')
      .leftJoin('model_versions as m', 'm.id', 'w.model_version_id')
      .select(['w.id', 'w.window_start', 'w.window_end', 'm.version', 'w.figures', 'w.breaches', 'w.policy_digest', 'w.distribution_digest'])
      .where('w.model_name', '=', model)
      .orderBy('w.window_end', 'desc')
      .limit(limit)
      .execute();
    const reviews = await db
      .selectFrom('monitoring_reviews as r')
      .leftJoin('monitoring_acknowledgements as a', 'a.review_id', 'r.review_id')
      .leftJoin('model_versions as m', 'm.id', 'r.model_version_id')
      .select([
        'r.review_id',
        'r.opened_at',
        'm.version',
        'r.breaches',
        'r.auto_rollback',
        'r.rollback_workflow_id',
        'a.acknowledged_by',
        'a.reason',
        'a.acknowledged_at',
      ])
      .where('r.model_name', '=', model)
      .orderBy('r.opened_at', 'desc')
      .limit(limit)
      .execute();
    return {
      windows: windows.map((w) => ({
        windowId: String(w.id),
        start: new Date(w.window_start).toISOString(),
        end: new Date(w.window_end).toISOString(),
        version: w.version ?? null,
        figures: w.figures,
        breaches: w.breaches,
        policyDigest: w.policy_digest,
        distributionDigest: w.distribution_digest,
      })),
      reviews: reviews.map((r) => ({
        reviewId: r.review_id,
        openedAt: new Date(r.opened_at).toISOString(),
        version: r.version ?? null,
        breaches: r.breaches,
        autoRollback: r.auto_rollback,
        rollbackWorkflowId: r.rollback_workflow_id,
        open: !r.acknowledged_by,
        ...(r.acknowledged_by
          ? { acknowledged: { by: r.acknowledged_by, reason: r.reason, at: r.acknowledged_at ? new Date(r.acknowledged_at).toISOString() : null } }
          : {}),
      })),
    };
  });
}

function fmt(n: unknown): string {
  return typeof n === 'number' ? String(Math.round(n * 1000) / 1000) : '-';
}

export function registerMonitor(program: Command): void {
  const monitor = program.command('monitor').description('post-deployment monitoring: drift, prediction shift, errors and latency per window');

  monitor
    .command('start <model>')
    .description("start the model's deployment monitor (the lifecycle starts it at deploy where the tier has `monitoring`)")
    .option('--window <duration>', "window length, like 30s, 15m or 1h (default: the served version's tier in the pack in force)")
    .option('--windows-per-run <n>', 'windows before the monitor continues as new', '100')
    .option('--as <who>', 'who starts it (recorded; default: this user@host)')
    .option('--json', 'print JSON')
    .action(async (model: string, opts: { window?: string; windowsPerRun: string; as?: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      checkModel(model);
      if (opts.window !== undefined && !/^[1-9]\d{0,6}(s|m|h|d)$/.test(opts.window))
        throw new CliError('--window is a duration like 30s, 15m or 1h', EXIT.usage);
      if (!/^[1-9]\d{0,2}$/.test(opts.windowsPerRun)) throw new CliError('--windows-per-run is a whole number from 1 to 500', EXIT.usage);
      let window = opts.window;
      if (window === undefined) {
        const [route] = await withDb((db) => servingRoutes(db, model));
        if (!route) throw new CliError(`model ${model} is not served`, EXIT.notFound, 'deploy a version first, or name the window with --window');
        window = loadPolicyPack(policyPackPath()).pack.riskTiers[route.riskTier as RiskTier].monitoring?.window ?? '1h';
      }
      const parsed = monitorInputSchema.safeParse({
        modelName: model,
        windowMs: durationMs(window),
        windowsPerRun: Number(opts.windowsPerRun),
        startedBy: opts.as ?? `${os.userInfo().username}@${os.hostname()}`,
      });
      if (!parsed.success) throw new CliError(`invalid monitor: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, EXIT.usage);
      const result = await withTemporal(async (client, env) => {
        const { WorkflowExecutionAlreadyStartedError } = await import('@temporalio/client');
        const workflowId = monitorWorkflowId(model);
        try {
          const handle = await client.workflow.start(MONITOR_WORKFLOW, {
            workflowId,
            taskQueue: `${env.FACTORY_TASK_QUEUE_PREFIX ?? ''}${TASK_QUEUES.control}`,
            args: [parsed.data],
          });
          return { workflowId, runId: handle.firstExecutionRunId, windowMs: parsed.data.windowMs, existing: false };
        } catch (err) {
          if (err instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, runId: null, windowMs: parsed.data.windowMs, existing: true };
          throw err;
        }
      });
      out.result(result, (r) =>
        r.existing ? `${r.workflowId} is already running` : `started ${r.workflowId} (run ${r.runId}), a window every ${r.windowMs / 1000} s`,
      );
      if (result.existing) process.exitCode = EXIT.refused;
    });

  monitor
    .command('status <model>')
    .description('recent windows (figures, breaches) and reviews of a model; the live monitor when it answers')
    .option('--limit <n>', 'windows and reviews shown', '20')
    .option('--json', 'print JSON')
    .action(async (model: string, opts: { limit: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      checkModel(model);
      if (!/^[1-9]\d{0,3}$/.test(opts.limit)) throw new CliError('--limit is a whole number from 1 to 9999', EXIT.usage);
      const rec = await recorded(model, Number(opts.limit));
      const live = await withTemporal(async (client) => {
        const handle = client.workflow.getHandle(monitorWorkflowId(model));
        const desc = await handle.describe().catch(() => undefined);
        if (!desc) return { running: false as const };
        if (desc.status.name !== 'RUNNING') return { running: false as const, temporalStatus: desc.status.name };
        const status = await handle.query<MonitorStatus>(MONITOR_STATUS_QUERY).catch(() => undefined);
        return { running: true as const, temporalStatus: desc.status.name, ...(status ? { status } : { status: null }) };
      }).catch(() => ({ running: false as const, temporalStatus: 'unreachable' }));
      if (!rec.windows.length && !rec.reviews.length && !live.running) {
        throw new CliError(`no monitor and no monitoring record for ${model}`, EXIT.notFound, `start one: factory monitor start ${model}`);
      }
      const openReviews = rec.reviews.filter((r) => r.open);
      out.result({ modelName: model, workflowId: monitorWorkflowId(model), monitor: live, openReviews, reviews: rec.reviews, windows: rec.windows }, (r) =>
        [
          `${r.modelName}  monitor ${r.workflowId}: ${r.monitor.running ? 'running' : (r.monitor.temporalStatus ?? 'not running')}`,
          ...(r.openReviews.length
            ? r.openReviews.map(
                (v) =>
                  `OPEN REVIEW ${v.reviewId} since ${v.openedAt} (version ${v.version ?? '?'})${v.autoRollback ? ` rolled back by ${v.rollbackWorkflowId}` : ''}: ${(
                    v.breaches as Array<{ metric: string; feature?: string; value: number; threshold: number }>
                  )
                    .slice(0, 5)
                    .map((b) => `${b.metric}${b.feature ? ` ${b.feature}` : ''} ${fmt(b.value)} > ${fmt(b.threshold)}`)
                    .join('; ')}  → factory monitor ack ${r.modelName} --reason "…"`,
              )
            : ['no open review']),
          'windows (newest first):',
          ...r.windows.map((w) => {
            const f = w.figures as Record<string, unknown>;
            const max = f.maxFeaturePsi as { feature: string; value: number } | null | undefined;
            return `  ${w.end}  v${w.version ?? '-'}  requests=${fmt(f.requests)} rows=${fmt(f.rows)} maxPSI=${max ? `${fmt(max.value)} (${max.feature})` : '-'} predPSI=${fmt(f.predictionPsi)} confShift=${fmt(f.confidenceShift)} errors=${fmt(f.errorRate)} p95=${fmt(f.latencyP95Ms)}ms  ${(w.breaches as unknown[]).length ? `BREACH ×${(w.breaches as unknown[]).length}` : 'ok'}`;
          }),
        ].join('\n'),
      );
    });

  monitor
    .command('ack <model>')
    .description("acknowledge the model's open review (the `acknowledge` signal): who and why are recorded")
    .requiredOption('--reason <text>', 'why the review is closed (3 to 1000 characters, no control characters)')
    .option('--as <email>', 'who acknowledges (a principal of the pack in force)')
    .option('--json', 'print JSON')
    .action(async (model: string, opts: { reason: string; as?: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      checkModel(model);
      const payload = { by: opts.as ?? `${os.userInfo().username}@${os.hostname()}`, reason: opts.reason };
      const parsed = acknowledgeSchema.safeParse(payload);
      if (!parsed.success)
        throw new CliError(`invalid acknowledgement: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, EXIT.usage);
      const result = await withTemporal(async (client) => {
        const handle = client.workflow.getHandle(monitorWorkflowId(model));
        const status = await handle.query<MonitorStatus>(MONITOR_STATUS_QUERY).catch((err: Error) => {
          throw new CliError(`the monitor of ${model} does not answer: ${err.message.slice(0, 200)}`, EXIT.notFound, `factory monitor status ${model}`);
        });
        if (!status.openReview) throw new CliError(`${model} has no open review`, EXIT.refused);
        await handle.signal(ACKNOWLEDGE_SIGNAL, parsed.data);
        // The monitor records the acknowledgement (or its refusal) between windows' timers, at once.
        for (let i = 0; i < 100; i++) {
          const now = await handle.query<MonitorStatus>(MONITOR_STATUS_QUERY);
          if (!now.openReview || now.openReview.reviewId !== status.openReview.reviewId)
            return { reviewId: status.openReview.reviewId, acknowledged: true, by: parsed.data.by };
          const refused = now.refused.find((r) => !status.refused.some((s) => s.at === r.at));
          if (refused) return { reviewId: status.openReview.reviewId, acknowledged: false, by: parsed.data.by, refused: refused.reason };
          await new Promise((r) => setTimeout(r, 100));
        }
        return {
          reviewId: status.openReview.reviewId,
          acknowledged: false,
          by: parsed.data.by,
          refused: 'not recorded within 10 s: check `factory monitor status`',
        };
      });
      out.result(result, (r) => (r.acknowledged ? `review ${r.reviewId} acknowledged by ${r.by}` : `refused: ${r.refused}`));
      if (!result.acknowledged) process.exitCode = EXIT.refused;
    });
}
