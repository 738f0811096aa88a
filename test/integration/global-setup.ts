import type { TestProject } from 'vitest/node';
import { loadEnv } from '../../src/config/env.ts';
import { components } from '../../src/dev/components/index.ts';
import { stackDown, stackUp } from '../../src/dev/stack.ts';
import { createLogger } from '../../src/log.ts';

/** Brings the real stack up once for the run; afterwards stops only what this run started. */
export default async function setup(_project: TestProject) {
  const env = loadEnv();
  const ctx = { env, log: createLogger('test-stack', 'warn') };
  const up = await stackUp(ctx, { onProgress: (m) => console.log(`[stack] ${m}`) });
  console.log(
    `[stack] ready in ${(up.millis / 1000).toFixed(1)}s: ${Object.entries(up.status)
      .map(([n, s]) => `${n}=${s.endpoint}`)
      .join(' ')}`,
  );
  return async () => {
    if (process.env.FACTORY_KEEP_STACK) return;
    await stackDown(ctx, { components: components.filter((c) => up.started.includes(c.name)) });
  };
}
