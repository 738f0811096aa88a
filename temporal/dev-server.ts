import { searchAttributes } from './search-attributes.ts';

/** Flags for `temporal server start-dev`: persistent SQLite, Web UI, our search attributes. */
export function devServerArgs(opts: { host: string; port: number; uiPort: number; dbFile: string; namespace: string }): string[] {
  return [
    'server', 'start-dev',
    '--ip', opts.host,
    '--port', String(opts.port),
    '--ui-ip', opts.host,
    '--ui-port', String(opts.uiPort),
    '--db-filename', opts.dbFile,
    '--sqlite-pragma', 'journal_mode=WAL',
    '--namespace', opts.namespace,
    '--log-level', 'warn',
    '--ui-disable-news-fetch',
    ...Object.entries(searchAttributes).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    // History export and audit cross-checks read whole histories; keep the default limits otherwise.
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true',
  ];
}
