/**
 * Saves a closed workflow's history as a replay fixture:
 *   node --import tsx scripts/record-history.ts <workflowId> test/fixtures/lifecycle-<name>.json
 * Replay tests run every fixture against the current workflow code, so a change that would break
 * running lifecycles fails CI. Record a new fixture when a workflow change is deliberate and versioned.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { loadEnv } from '../src/config/env.ts';
import { venvPaths } from '../src/dev/venv.ts';

const [workflowId, file] = process.argv.slice(2);
if (!workflowId || !file) {
  console.error('usage: record-history.ts <workflowId> <file.json>');
  process.exit(2);
}
const env = loadEnv();
// The Temporal CLI writes the canonical proto JSON that historyFromJSON reads back.
const json = execFileSync(
  venvPaths(env).temporal,
  ['workflow', 'show', '--address', env.TEMPORAL_ADDRESS, '--namespace', env.TEMPORAL_NAMESPACE, '-w', workflowId, '--output', 'json'],
  {
    maxBuffer: 100_000_000,
  },
);
fs.writeFileSync(file, json);
console.log(`wrote ${(JSON.parse(json.toString()) as { events: unknown[] }).events.length} events to ${file}`);
