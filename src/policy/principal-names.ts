import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { factoryHome } from './pack-path.ts';

/** What `trace` takes from the pack in force: principal id (lower case) → printed name, or why there are none. */
export type PrincipalNames = { names: Array<[string, string]> } | { problem: string };

/** Largest cache entry read back (a pack's names are a few KiB); anything larger is ignored. */
const MAX_ENTRY_BYTES = 1024 * 1024;

/**
 * The code that validates a pack, named by the CLI bundle's folder (build/cli/v<sources>-<build>/:
 * one folder per state of the sources, never rewritten). Undefined outside the bundle (tsx, tests
 * importing the source): then nothing is cached, since an edit to the validation would not show.
 */
const CODE = /\/build\/cli\/(v\d+-\d+)\//.exec(import.meta.url)?.[1];

/**
 * The approvers' printed names from the pack at `file`, as loadPolicyPack would validate it. Loading
 * the pack (the YAML parser, the pack's schema, the whole validation) cost a `factory trace` process
 * more than its query: the verdict is kept under $FACTORY_HOME/cache/, keyed by the pack's exact
 * bytes, its path and the validating code, so the next call reads a small JSON file instead. A
 * pack that cannot be read is never cached (its state may change at any moment). `code` and `home`
 * are for tests.
 */
export async function principalNamesOf(file: string, { code = CODE, home = factoryHome() }: { code?: string; home?: string } = {}): Promise<PrincipalNames> {
  let text: Buffer;
  try {
    text = fs.readFileSync(file);
  } catch (err) {
    return { problem: why(err) };
  }
  const key = code
    ? createHash('sha256')
        .update(`principal-names/1\0${code}\0${path.resolve(file)}\0`)
        .update(text)
        .digest('hex')
    : undefined;
  const entry = key ? path.join(home, 'cache', 'principal-names', `${createHash('sha256').update(path.resolve(file)).digest('hex')}.json`) : undefined;
  if (key && entry) {
    const cached = readEntry(entry, key);
    if (cached) return cached;
  }
  const { parsePolicyPack } = await import('./pack.ts');
  let found: PrincipalNames;
  try {
    found = { names: parsePolicyPack(text.toString('utf8'), file).pack.principals.map((p) => [p.id.toLowerCase(), p.name]) };
  } catch (err) {
    found = { problem: why(err) };
  }
  if (key && entry) writeEntry(entry, key, found);
  return found;
}

/** An error in a few words: its code (ENOENT), else its message's first line ("<file>: invalid policy pack"). */
function why(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (((err as Error).message.split('\n\n')[0] ?? '').split('\n')[0] as string);
}

/** The entry when it is for this key and well-formed; else undefined (recomputed and rewritten). */
function readEntry(entry: string, key: string): PrincipalNames | undefined {
  try {
    if (fs.statSync(entry).size > MAX_ENTRY_BYTES) return undefined;
    const v = JSON.parse(fs.readFileSync(entry, 'utf8')) as { key?: unknown; names?: unknown; problem?: unknown };
    if (v.key !== key) return undefined;
    if (typeof v.problem === 'string') return { problem: v.problem };
    if (Array.isArray(v.names) && v.names.every((n) => Array.isArray(n) && n.length === 2 && typeof n[0] === 'string' && typeof n[1] === 'string')) {
      return { names: v.names as Array<[string, string]> };
    }
  } catch {
    /* missing or unreadable: recompute */
  }
  return undefined;
}

/** Written beside, then renamed into place: a reader never sees half an entry. A failure is ignored (a read-only home). */
function writeEntry(entry: string, key: string, value: PrincipalNames): void {
  const tmp = `${entry}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(path.dirname(entry), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, JSON.stringify({ key, ...value }), { mode: 0o600 });
    fs.renameSync(tmp, entry);
  } catch {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* nothing was written */
    }
  }
}
