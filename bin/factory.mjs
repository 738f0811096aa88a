#!/usr/bin/env node
// The `factory` CLI. It runs from an esbuild bundle of src/cli, rebuilt here whenever a source file
// is newer, so a change is used at once and a command like `factory trace` starts in a fraction of a
// second instead of transpiling every module on each call.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { newestSourceMtime } from '../src/dev/newest-source.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const builds = path.join(root, 'build', 'cli');
// One folder per state of the sources, never rewritten: a command still running from an older
// bundle (a `--wait` of hours) loads its lazy chunks from its own folder, even after a rebuild.
// BUILD names the bundle's own settings: a change to them (below) builds anew over unchanged sources.
const BUILD = 2;
const outdir = path.join(builds, `v${Math.round(newestSourceMtime(root))}-${BUILD}`);

/**
 * Pure-JavaScript packages every command loads, bundled into the CLI's chunks: loading kysely, zod,
 * yaml and commander file by file (hundreds of ES modules, each resolved, read and linked) cost
 * `trace` more than its work (docs/benchmarks.md, "factory trace as a process"). Every other package
 * stays external: native code (grpc, protobufjs, the Temporal SDK), the AWS SDK, pino (its transports
 * resolve files by name), pg (an optional native binding); they load only on the commands that need them.
 */
const BUNDLED = new Set(['kysely', 'zod', 'yaml', 'commander', '@noble/curves', '@noble/hashes']);
const externals = {
  name: 'factory-externals',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (a) => {
      if (a.path.startsWith('node:')) return { external: true };
      const pkg = a.path.startsWith('@') ? a.path.split('/').slice(0, 2).join('/') : a.path.split('/')[0];
      return BUNDLED.has(pkg) ? undefined : { external: true };
    });
  },
};
const entry = path.join(outdir, 'main.js');

if (!fs.existsSync(entry)) {
  const { build } = await import('esbuild');
  // Build beside, then rename into place: two calls racing never see a half-written bundle.
  const tmp = path.join(builds, `.tmp-${process.pid}-${Date.now()}`);
  await build({
    entryPoints: [path.join(root, 'src', 'cli', 'main.ts')],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    plugins: [externals],
    // The bundled CommonJS (commander) calls require(): give each chunk one.
    banner: { js: "import { createRequire as __factoryRequire } from 'node:module'; const require = __factoryRequire(import.meta.url);" },
    outdir: tmp,
    logLevel: 'error',
  });
  try {
    fs.renameSync(tmp, outdir);
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true }); // another call won the race; its bundle is the same
  }
  prune();
}
await import(pathToFileURL(entry).href);

/** Drops bundles no command is likely to run from: older than a day, beyond the three newest. */
function prune() {
  const DAY = 24 * 3600 * 1000;
  try {
    const entries = fs
      .readdirSync(builds, { withFileTypes: true })
      .map((e) => ({ name: e.name, p: path.join(builds, e.name), mtime: fs.statSync(path.join(builds, e.name)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    const versions = entries.filter((e) => /^v\d+(-\d+)?$/.test(e.name));
    const keep = new Set([outdir, ...versions.slice(0, 3).map((e) => e.p)]);
    for (const e of entries) if (!keep.has(e.p) && Date.now() - e.mtime > DAY) fs.rmSync(e.p, { recursive: true, force: true });
  } catch {
    /* pruning is housekeeping: never fail a command over it */
  }
}
