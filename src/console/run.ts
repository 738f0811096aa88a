/**
 * The console's entrypoint as its own process: `node --import tsx src/console/run.ts`, started by
 * `factory dev up` (src/dev/components/console.ts). SIGTERM stops it after the pages in flight.
 */
import { loadEnv } from '../config/env.ts';
import { createLogger } from '../log.ts';
import { startConsole } from './start.ts';

const env = loadEnv();
const logger = createLogger('console', env.LOG_LEVEL);
const running = await startConsole(env, logger);
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void running.close().then(() => {
      logger.info('console stopped');
      process.exit(0);
    });
  });
}
