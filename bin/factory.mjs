#!/usr/bin/env node
// The `factory` CLI. It runs from an esbuild bundle of src/cli (build/cli/), rebuilt here whenever a
// source file is newer than it, so a change is used at once and a command like `factory trace`
// starts in a fraction of a second instead of transpiling every module on each call.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'build', 'cli');
const entry = path.join(outdir, 'main.js');
const SOURCES = ['src', 'activities', 'workflows', 'temporal', 'workers'];

function newestSource() {
  let newest = 0;
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  for (const d of SOURCES) if (fs.existsSync(path.join(root, d))) walk(path.join(root, d));
  return Math.max(newest, fs.statSync(path.join(root, 'package-lock.json')).mtimeMs);
}

function builtAt() {
  try {
    return fs.statSync(entry).mtimeMs;
  } catch {
    return 0;
  }
}

if (builtAt() < newestSource()) {
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
