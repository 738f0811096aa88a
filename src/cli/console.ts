import type { Command } from 'commander';
import { loadEnv } from '../config/env.ts';
import { createLogger } from '../log.ts';
import { CliError, EXIT } from './output.ts';

export function registerConsole(program: Command): void {
  program
    .command('console')
    .description(
      'serve the read-only console in the foreground (inventory, model cards and lineage, pending approvals, KPIs, audit status) on FACTORY_CONSOLE_HOST:FACTORY_CONSOLE_PORT; `factory dev up` also starts it',
    )
    .action(async () => {
      const env = loadEnv();
      const logger = createLogger('console', env.LOG_LEVEL);
      const { startConsole } = await import('../console/start.ts');
      let running;
      try {
        running = await startConsole(env, logger);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE')
          throw new CliError(
            `port ${env.FACTORY_CONSOLE_PORT} is in use`,
            EXIT.unhealthy,
            'is the console already running (`factory dev status`)? else set FACTORY_CONSOLE_PORT',
          );
        if (e.code === 'ECONNREFUSED') throw new CliError(`cannot reach Postgres: ${e.message}`, EXIT.unhealthy, 'start the stack with `npx factory dev up`');
        throw err;
      }
      process.stderr.write(`console: ${running.url} (read-only; Ctrl-C stops it)\n`);
      await new Promise<void>((resolve) => {
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve());
      });
      await running.close();
    });
}
