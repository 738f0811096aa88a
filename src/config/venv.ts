import fs from 'node:fs';
import path from 'node:path';
import type { Env } from './env.ts';

/** Paths of the Python side installed by scripts/setup.sh into the project venv. */
export function venvPaths(env: Env) {
  const bin = path.join(env.FACTORY_VENV, 'bin');
  const libDir = path.join(env.FACTORY_VENV, 'lib');
  const pyDir = fs.existsSync(libDir) ? fs.readdirSync(libDir).find((d) => d.startsWith('python3')) : undefined;
  const sitePackages = path.join(libDir, pyDir ?? 'python3', 'site-packages');
  return {
    bin,
    python: path.join(bin, 'python'),
    temporal: path.join(bin, 'temporal'),
    motoServer: path.join(bin, 'moto_server'),
    sitePackages,
    pythonVersion: pyDir?.replace('python', '') ?? '3',
  };
}

export function requireFile(file: string, what: string): string {
  if (!fs.existsSync(file)) throw new Error(`${what} not found at ${file}: run \`npm run setup\` (scripts/setup.sh) first`);
  return file;
}
