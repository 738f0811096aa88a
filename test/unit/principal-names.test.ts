import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_PACK, PolicyPackError, parsePolicyPack } from '../../src/policy/pack.ts';
import { principalNamesOf } from '../../src/policy/principal-names.ts';
import { keyedTestPack } from '../signing.ts';

let dir: string;
let home: string;
let packFile: string;
const entries = () => (fs.existsSync(path.join(home, 'cache', 'principal-names')) ? fs.readdirSync(path.join(home, 'cache', 'principal-names')) : []);
const entryFile = () => path.join(home, 'cache', 'principal-names', entries()[0]!);
const expected = () => keyedTestPack().loaded.pack.principals.map((p) => [p.id.toLowerCase(), p.name]);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'principal-names-'));
  home = path.join(dir, 'home');
  packFile = path.join(dir, 'pack.yaml');
  fs.writeFileSync(packFile, keyedTestPack().text);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("trace's approvers' names from the pack in force", () => {
  it('are the principals of the pack as loadPolicyPack validates it, kept for the next call', async () => {
    expect(await principalNamesOf(packFile, { code: 'v1-2', home })).toEqual({ names: expected() });
    expect(entries()).toHaveLength(1);
    // The next call answers from the entry: a name changed in it shows (the pack is not read again).
    const e = JSON.parse(fs.readFileSync(entryFile(), 'utf8')) as { names: Array<[string, string]> };
    e.names[0]![1] = 'from the cache';
    fs.writeFileSync(entryFile(), JSON.stringify(e));
    const again = await principalNamesOf(packFile, { code: 'v1-2', home });
    expect('names' in again && again.names[0]![1]).toBe('from the cache');
  });

  it('are recomputed when the pack bytes or the validating code change, and the entry replaced', async () => {
    await principalNamesOf(packFile, { code: 'v1-2', home });
    const e = JSON.parse(fs.readFileSync(entryFile(), 'utf8')) as { names: Array<[string, string]> };
    e.names[0]![1] = 'stale';
    fs.writeFileSync(entryFile(), JSON.stringify(e));
    expect(await principalNamesOf(packFile, { code: 'v2-2', home })).toEqual({ names: expected() });
    e.names[0]![1] = 'stale';
    fs.writeFileSync(entryFile(), JSON.stringify({ ...e, key: JSON.parse(fs.readFileSync(entryFile(), 'utf8')).key }));
    fs.appendFileSync(packFile, '\n# one more comment\n');
    expect(await principalNamesOf(packFile, { code: 'v2-2', home })).toEqual({ names: expected() });
    expect(entries()).toHaveLength(1);
  });

  it('say why for a broken pack (the first line of what loadPolicyPack throws, as before), and cache that verdict too', async () => {
    /** What loading the pack as `audit verify` does throws, in the warning's few words. */
    const why = (text: string) => {
      try {
        parsePolicyPack(text, packFile);
      } catch (err) {
        expect(err).toBeInstanceOf(PolicyPackError);
        return (err as Error).message.split('\n')[0]!;
      }
      throw new Error('the pack loaded');
    };
    const unkeyed = fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8'); // no keys: its signing tiers are invalid
    fs.writeFileSync(packFile, unkeyed);
    expect(why(unkeyed)).toBe(`${packFile}: invalid policy pack`);
    expect(await principalNamesOf(packFile, { code: 'v1-2', home })).toEqual({ problem: why(unkeyed) });
    expect(await principalNamesOf(packFile, { code: 'v1-2', home })).toEqual({ problem: why(unkeyed) });
    fs.writeFileSync(packFile, 'principals: [');
    expect(why('principals: [')).toMatch(/not valid YAML/);
    expect(await principalNamesOf(packFile, { code: 'v1-2', home })).toEqual({ problem: why('principals: [') });
  });

  it('never cache a pack that cannot be read', async () => {
    expect(await principalNamesOf(path.join(dir, 'absent.yaml'), { code: 'v1-2', home })).toEqual({ problem: 'ENOENT' });
    expect(entries()).toHaveLength(0);
  });

  it('ignore a cache entry that is not one of ours: wrong shape, not JSON, too large', async () => {
    await principalNamesOf(packFile, { code: 'v1-2', home });
    const { key } = JSON.parse(fs.readFileSync(entryFile(), 'utf8')) as { key: string };
    for (const bad of [
      JSON.stringify({ key, names: [['a', 1]] }),
      JSON.stringify({ key, names: 'x' }),
      JSON.stringify({ key }),
      '{not json',
      JSON.stringify({ key, names: [['a', 'b'.repeat(2 * 1024 * 1024)]] }),
    ]) {
      fs.writeFileSync(entryFile(), bad);
      expect(await principalNamesOf(packFile, { code: 'v1-2', home })).toEqual({ names: expected() });
    }
  });

  it('cache nothing outside the CLI bundle (no code identity), nor where the home cannot be written', async () => {
    expect(await principalNamesOf(packFile, { home })).toEqual({ names: expected() });
    expect(fs.existsSync(path.join(home, 'cache'))).toBe(false);
    fs.writeFileSync(home, 'a file where the home should be');
    expect(await principalNamesOf(packFile, { code: 'v1-2', home })).toEqual({ names: expected() });
  });
});
