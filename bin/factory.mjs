#!/usr/bin/env node
// The `factory` CLI. It runs from an esbuild bundle of src/cli (build/cli/), rebuilt here whenever a
// source file is newer than it, so a change is used at once and a command like `factory trace`
// starts in a fraction of a second instead of transpiling every module on each call.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { newestSourceMtime } from '../src/dev/newest-source.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'build', 'cli');
const entry = path.join(outdir, 'main.js');
function builtAt() {
  try {
    return fs.statSync(entry).mtimeMs;
  } catch {
    return 0;
  }
}

if (builtAt() < newestSourceMtime(root)) {
  const { build } = await import('esbuild');
  // Build beside, then swap in: two CLI calls racing never see a half-written bundle.
  const tmp = `${outdir}.tmp-${process.pid}`;
  await build({
    entryPoints: [path.join(root, 'src', 'cli', 'main.ts')],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outdir: tmp,
    logLevel: 'error',
  });
  fs.rmSync(outdir, { recursive: true, force: true });
  try {
    fs.renameSync(tmp, outdir);
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true }); // another call won the race; its bundle is as fresh
  }
}
await import(pathToFileURL(entry).href);
