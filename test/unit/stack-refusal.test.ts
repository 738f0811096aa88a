import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnv } from '../../src/config/env.ts';
import { type Component, StackRefusal, type StackContext } from '../../src/dev/component.ts';
import { isAlive, processFiles, readPid, startDetached } from '../../src/dev/process.ts';
import { isLoopback, portHeld, stackDown, stackUp } from '../../src/dev/stack.ts';
import { packAgreement, packErrorSummary, packInUse, readWorkerReady, workerReadyFile } from '../../src/process/worker-ready.ts';
import { createLogger } from '../../src/log.ts';

// Real processes in a scratch state directory; the "endpoint" is a marker file the server touches.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-refusal-'));
const log = createLogger('test', 'silent');

/** A server whose endpoint comes from the context; healthy while its marker file exists. */
function markerServer(validate?: () => Promise<void>): Component {
  const marker = (ctx: StackContext) => path.join(home, `${ctx.env.S3_REGION}.up`);
  return {
    name: 'marker',
    startTimeoutMs: 3_000,
    hint: 'none',
    endpoint: (ctx) => `marker://${ctx.env.S3_REGION}`,
    healthy: async (ctx) => fs.existsSync(marker(ctx)),
    start: async (ctx) => void startDetached(processFiles(home, 'marker'), 'bash', ['-c', `touch ${marker(ctx)}; exec sleep 60`]),
    ...(validate ? { validate } : {}),
  };
}

const at = (region: string): StackContext => ({ env: loadEnv({ FACTORY_HOME: home, S3_REGION: region }), log });

describe('dev up never stops what it cannot put back', () => {
  it('refuses, leaving our server running, when the configuration names another endpoint where nothing answers', async () => {
    const server = markerServer();
    expect((await stackUp(at('here'), { components: [server] })).started).toEqual(['marker']);
    const pid = readPid(processFiles(home, 'marker'))!;

    // Before the fix, `up` stopped this healthy server because a typo'd endpoint did not answer.
    const err = await stackUp(at('typo'), { components: [server] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackRefusal);
    expect((err as Error).message).toContain(`nothing answers at marker://typo, but our marker (pid ${pid}) runs at marker://here`);
    expect(isAlive(pid)).toBe(true);
    expect((await stackUp(at('here'), { components: [server] })).found).toEqual(['marker']);

    // A server of ours that stops answering where it was started is still replaced, as before.
    fs.rmSync(path.join(home, 'here.up'));
    const again = await stackUp(at('here'), { components: [server] });
    expect(again.started).toEqual(['marker']);
    expect(isAlive(pid)).toBe(false);
    await stackDown(at('here'), { components: [server] });
  });

  it('runs validation before anything is started or stopped', async () => {
    const server = markerServer(async () => {
      throw new StackRefusal('marker', 'broken configuration: field x.y');
    });
    await expect(stackUp(at('valid'), { components: [server] })).rejects.toThrow('marker: broken configuration: field x.y');
    expect(readPid(processFiles(home, 'marker'))).toBeUndefined();
  });
});

describe('addresses dev up may start on', () => {
  it('loopback only', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '10.0.0.1', '192.0.2.10', 'localhsot', '127.0.0.l', 'example.com', '::']) expect(isLoopback(h), h).toBe(false);
  });

  it('sees a port held by another process', async () => {
    const other = net.createServer();
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const { port } = other.address() as net.AddressInfo;
    expect(await portHeld({ host: '127.0.0.1', port })).toBe(true);
    await new Promise((resolve) => other.close(resolve));
    expect(await portHeld({ host: '127.0.0.1', port })).toBe(false);
  });
});

describe('the policy pack the workers loaded', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-pack-unit-'));

  it('summarises a YAML error without quoting the pack', () => {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'version: x\nsecret: a: b\n');
    const p = packInUse(file);
    expect(p).toMatchObject({ path: file });
    expect('error' in p && p.error).toMatch(/line 2, column \d+$/);
    expect(JSON.stringify(p)).not.toContain('secret');
    expect(packErrorSummary('x: not valid YAML: oops at line 1, column 2:\n\nquoted\n^')).toBe('x: not valid YAML: oops at line 1, column 2');
    expect(packInUse(path.join(dir, 'missing.yaml'))).toMatchObject({ error: expect.stringMatching(/ENOENT$/) });
  });

  it('reads a legacy ready file (bare pid) and says the workers have not reported their pack', () => {
    const h = fs.mkdtempSync(path.join(dir, 'home-'));
    fs.mkdirSync(path.dirname(workerReadyFile(h)), { recursive: true });
    fs.writeFileSync(workerReadyFile(h), '4242');
    expect(readWorkerReady(workerReadyFile(h))).toEqual({ pid: 4242 });
    const cli = { path: '/p.yaml', digest: 'sha256:aa' };
    expect(packAgreement(h, cli)).toMatchObject({ agrees: false, warning: expect.stringContaining('have not reported') });
    fs.writeFileSync(workerReadyFile(h), JSON.stringify({ pid: 1, policyPack: cli }));
    expect(packAgreement(h, cli)).toMatchObject({ agrees: true });
    expect(packAgreement(h, { path: '/p.yaml', digest: 'sha256:bb' })).toMatchObject({
      agrees: false,
      warning: expect.stringContaining('is not the one the workers loaded'),
    });
  });
});
