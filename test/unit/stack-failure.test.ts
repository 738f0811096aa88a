import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnv } from '../../src/config/env.ts';
import { type Component, ComponentStartError } from '../../src/dev/component.ts';
import { processFiles, startDetached } from '../../src/dev/process.ts';
import { stackDown, stackStatus, stackUp } from '../../src/dev/stack.ts';
import { createLogger } from '../../src/log.ts';

// Real processes, a scratch state directory: how `dev up` reports a component that will not start.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-stack-'));
const ctx = { env: loadEnv({ FACTORY_HOME: home }), log: createLogger('test', 'silent') };

function component(name: string, script: string, healthyWhen: () => boolean): Component {
  return {
    name,
    startTimeoutMs: 3_000,
    hint: `free the port of ${name}`,
    endpoint: () => `local:${name}`,
    healthy: async () => healthyWhen(),
    start: async () => void startDetached(processFiles(home, name), 'bash', ['-c', script]),
  };
}

describe('dev up reporting', () => {
  it('reports a component that exits during start with its log tail and a hint, without hanging', async () => {
    const broken = component('broken', 'echo "bind: address already in use (port 7)"; exit 3', () => false);
    const t = Date.now();
    const err = await stackUp(ctx, { components: [broken] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComponentStartError);
    expect((err as Error).message).toMatch(/broken: exited during start/);
    expect((err as Error).message).toContain('bind: address already in use (port 7)');
    expect((err as Error).message).toContain('hint: free the port of broken');
    expect(Date.now() - t).toBeLessThan(3_000);
  });

  it('starts, finds running on a second up, and stops only what it started', async () => {
    const marker = path.join(home, 'ready');
    const ok = component('sleeper', `touch ${marker}; exec sleep 60`, () => fs.existsSync(marker));
    const first = await stackUp(ctx, { components: [ok] });
    expect(first.started).toEqual(['sleeper']);
    const second = await stackUp(ctx, { components: [ok] });
    expect(second).toMatchObject({ started: [], found: ['sleeper'] });
    expect(await stackStatus(ctx, [ok])).toEqual({ sleeper: { endpoint: 'local:sleeper', healthy: true, managed: true } });
    const pid = Number(fs.readFileSync(processFiles(home, 'sleeper').pidFile, 'utf8'));
    expect(await stackDown(ctx, { components: [ok] })).toEqual(['sleeper']);
    expect(() => process.kill(pid, 0)).toThrow();
    expect(await stackDown(ctx, { components: [ok] })).toEqual([]);
  });
});
