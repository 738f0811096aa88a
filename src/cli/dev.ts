import type { Command } from 'commander';
import { loadEnv } from '../config/env.ts';
import { ComponentStartError, StackRefusal, type StackContext } from '../dev/component.ts';
import { stackDown, stackStatus, stackUp, type StackStatus } from '../dev/stack.ts';
import { createLogger } from '../log.ts';
import { CliError, EXIT, createOutput } from './output.ts';

export function stackContext(): StackContext {
  const env = loadEnv();
  return { env, log: createLogger('factory', env.LOG_LEVEL === 'info' ? 'warn' : env.LOG_LEVEL) };
}

function renderStatus(status: StackStatus): string {
  return Object.entries(status)
    .map(([name, s]) => {
      const line = `${s.healthy ? '✓' : '✗'} ${name.padEnd(9)} ${s.endpoint}${s.managed ? '' : s.healthy ? '  [external]' : ''}`;
      // Details (the S3 store's limits, the policy pack in force) go on their own lines: they are read.
      return s.detail
        ? `${line}\n${s.detail
            .split('; ')
            .map((d) => `            ${d}`)
            .join('\n')}`
        : line;
    })
    .join('\n');
}

export function registerDev(program: Command): void {
  const dev = program.command('dev').description('the local stack: Temporal, Postgres, S3, Triton and the workers');

  dev
    .command('up')
    .description(
      'start every component that is not already running, and wait until all are healthy; exit 4 when it refuses (bad endpoint, port held by another process, broken policy pack), stopping nothing',
    )
    .option('--json', 'print one JSON object')
    .action(async (opts: { json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const ctx = stackContext();
      try {
        const res = await stackUp(ctx, { onProgress: out.progress });
        out.result(res, () =>
          [
            renderStatus(res.status),
            '',
            `stack ready in ${(res.millis / 1000).toFixed(1)}s (started: ${res.started.join(', ') || 'none'}; found running: ${res.found.join(', ') || 'none'})`,
            `Temporal Web UI: ${res.status.temporal?.detail?.replace('Web UI ', '') ?? ''}`,
            'Stop it with: npx factory dev down',
          ].join('\n'),
        );
      } catch (err) {
        if (err instanceof StackRefusal)
          throw new CliError(`dev up refused: ${err.message}`, EXIT.refused, 'nothing was stopped; fix the cause above, then run `npx factory dev up` again');
        if (err instanceof ComponentStartError) throw new CliError(err.message, EXIT.unhealthy, 'fix the cause above, then run `npx factory dev up` again');
        throw err;
      }
    });

  dev
    .command('down')
    .description('stop what `dev up` started (and nothing else)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const stopped = await stackDown(stackContext(), { onProgress: out.progress });
      out.result({ stopped }, () => (stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing of ours was running'));
    });

  dev
    .command('status')
    .description('health of each component; exit code 3 when any is unhealthy')
    .option('--json', 'print one JSON object with a key per component')
    .action(async (opts: { json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const status = await stackStatus(stackContext());
      out.result(status, () => renderStatus(status));
      if (!Object.values(status).every((s) => s.healthy)) process.exitCode = EXIT.unhealthy;
    });
}
