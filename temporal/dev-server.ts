import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { projectRoot } from '../src/config/env.ts';
import { searchAttributes } from './search-attributes.ts';

/**
 * temporal/dynamic-config.yaml as `key=value` pairs: one file for production and the dev server.
 * Found from the project root, not import.meta.url: the CLI runs from a bundle in build/cli/v<n>/.
 */
export function dynamicConfigValues(file: string | URL = path.join(projectRoot, 'temporal', 'dynamic-config.yaml')): string[] {
  const doc = parse(fs.readFileSync(file, 'utf8')) as Record<string, Array<{ value: unknown }>>;
  return Object.entries(doc).map(([key, entries]) => `${key}=${JSON.stringify(entries[0]!.value)}`);
}

/** Flags for `temporal server start-dev`: persistent SQLite, Web UI, our search attributes. */
export function devServerArgs(opts: { host: string; port: number; uiPort: number; dbFile: string; namespace: string }): string[] {
  return [
    'server',
    'start-dev',
    '--ip',
    opts.host,
    '--port',
    String(opts.port),
    '--ui-ip',
    opts.host,
    '--ui-port',
    String(opts.uiPort),
    '--db-filename',
    opts.dbFile,
    '--sqlite-pragma',
    'journal_mode=WAL',
    '--namespace',
    opts.namespace,
    '--log-level',
    'warn',
    '--ui-disable-news-fetch',
    ...Object.entries(searchAttributes).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    // History export and audit cross-checks read whole histories; keep the default limits otherwise.
    '--dynamic-config-value',
    'frontend.enableUpdateWorkflowExecution=true',
    ...dynamicConfigValues().flatMap((kv) => ['--dynamic-config-value', kv]),
  ];
}
