import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Source files and one digest over them, the way trainers/train.py measures its own: sha256 of the
 * `sha256sum` listing (`<hex>  <path>\n`, sorted by path, paths relative to `root`), so anyone can
 * recompute it with `sha256sum <files> | sha256sum` from the project root.
 */
export function sourceDigest(root: string, files: readonly string[]): { digest: string; files: Array<{ path: string; sha256: string }> } {
  const listed = [...files].sort().map((p) => ({
    path: p,
    sha256: createHash('sha256')
      .update(fs.readFileSync(path.join(root, p)))
      .digest('hex'),
  }));
  const summary = listed.map((f) => `${f.sha256}  ${f.path}\n`).join('');
  return { digest: `sha256:${createHash('sha256').update(summary).digest('hex')}`, files: listed };
}
