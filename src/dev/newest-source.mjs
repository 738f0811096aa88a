// Plain JavaScript so that both bin/factory.mjs (before any TypeScript loader) and the stack code use it.
import fs from 'node:fs';
import path from 'node:path';

/** Folders whose TypeScript makes up the CLI and the workers. */
const SOURCE_DIRS = ['src', 'activities', 'workflows', 'temporal', 'workers'];

/** The newest modification time (ms) of the project's TypeScript sources and its lockfile. */
export function newestSourceMtime(root) {
  let newest = 0;
  // Every CLI call walks these folders first (bin/factory.mjs): names are joined as plain strings,
  // since path.join's normalising of each of a few hundred paths showed in `factory trace`'s profile.
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = `${dir}${path.sep}${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        const m = fs.statSync(p).mtimeMs;
        if (m > newest) newest = m;
      }
    }
  };
  for (const d of SOURCE_DIRS) if (fs.existsSync(path.join(root, d))) walk(path.join(root, d));
  return Math.max(newest, fs.statSync(path.join(root, 'package-lock.json')).mtimeMs);
}
