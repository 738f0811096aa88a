import path from 'node:path';
import { projectRoot } from '../config/env.ts';

/** Runs one of our TypeScript entry points in a fresh Node process (via tsx, as the CLI does). */
export function nodeEntrypoint(relativeFile: string): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', 'tsx', path.join(projectRoot, relativeFile)] };
}
