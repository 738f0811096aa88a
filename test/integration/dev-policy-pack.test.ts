import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, processFiles, readPid } from '../../src/dev/process.ts';
import { parsePolicyPack } from '../../src/policy/pack.ts';
import { stackPolicyText } from '../helpers.ts';
import { factoryCli } from './harness.ts';

// The real CLI against the real stack, with dev workers of its own: a scratch FACTORY_HOME and a
// unique task-queue prefix, so stopping and starting them touches nobody else's workers.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-pack-'));
const pack = path.join(home, 'policy.yaml');
const other = path.join(home, 'other-policy.yaml');
/** A free port: this home runs a gateway of its own (it reads the pack, so it follows it like the workers). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}
const base = {
  FACTORY_HOME: home,
  FACTORY_TASK_QUEUE_PREFIX: `p${randomBytes(3).toString('hex')}-`,
  FACTORY_POLICY_PACK: pack,
  FACTORY_GATEWAY_PORT: String(await freePort()),
  // and a console of its own (it reads the pack too; the shared stack's console holds the default port).
  FACTORY_CONSOLE_PORT: String(await freePort()),
};
const sha = (file: string) => `sha256:${createHash('sha256').update(fs.readFileSync(file)).digest('hex')}`;
const workersPid = () => readPid(processFiles(home, 'workers'));

interface StatusJson {
  workers: {
    healthy: boolean;
    detail?: string;
    facts: { policyPack: { path: string; digest?: string; agrees: boolean; warning?: string; workers: { digest?: string } | null } };
  };
}

async function status(extra: NodeJS.ProcessEnv = {}): Promise<StatusJson> {
  const res = await factoryCli(['dev', 'status', '--json'], { ...base, ...extra });
  return JSON.parse(res.stdout) as StatusJson;
}

describe('one policy pack for all: dev up validates it, workers follow it, the CLI says when it differs', () => {
  // The stack's pack: policies/default.yaml with the dev principals' keys (its signing tiers need them).
  const text = stackPolicyText();
  beforeAll(async () => {
    parsePolicyPack(text); // the starting point is a valid pack
    fs.writeFileSync(pack, text);
    fs.writeFileSync(other, text.replace(/^version: .*$/m, 'version: "other"'));
    const up = await factoryCli(['dev', 'up', '--json'], base);
    expect(up.code, up.stderr).toBe(0);
    expect([...JSON.parse(up.stdout).started].sort()).toEqual(['console', 'gateway', 'workers']);
  }, 240_000);

  afterAll(async () => {
    await factoryCli(['dev', 'down'], base);
  });

  it('`dev status` shows the digest and path of the pack in force, and that the workers loaded it', async () => {
    const s = await status();
    expect(s.workers.facts.policyPack).toMatchObject({ path: pack, digest: sha(pack), agrees: true, workers: { digest: sha(pack) } });
    const human = await factoryCli(['dev', 'status'], base);
    expect(human.stdout).toContain(`policy pack ${pack} ${sha(pack).slice(0, 19)}`);
  });

  it("a CLI whose FACTORY_POLICY_PACK is not the workers' pack says so", async () => {
    const s = await status({ FACTORY_POLICY_PACK: other });
    expect(s.workers.facts.policyPack).toMatchObject({ path: other, digest: sha(other), agrees: false, workers: { digest: sha(pack) } });
    expect(s.workers.facts.policyPack.warning).toContain(`this shell's policy pack ${other}`);
    expect(s.workers.facts.policyPack.warning).toContain('is not the one the workers loaded');
  });

  it('a broken pack is refused by `dev up` naming the field; the running workers are left alone', async () => {
    const pid = workersPid()!;
    fs.writeFileSync(pack, text.replace(/accuracy: 0\.90/, 'accuracy: "high"'));
    const up = await factoryCli(['dev', 'up'], base);
    expect(up.code).toBe(4);
    expect(up.stderr).toContain('the policy pack is broken');
    expect(up.stderr).toContain('riskTiers.low.thresholds.accuracy');
    expect(up.stderr).not.toMatch(/\n\s+at /);
    expect(workersPid()).toBe(pid);
    expect(isAlive(pid)).toBe(true);

    // `trace` does not crash on it: the pack only lends approvers' names.
    const trace = await factoryCli(['trace', `no-such-model-${randomBytes(3).toString('hex')}`], base);
    expect(trace.code).toBe(6);
    expect(trace.stderr).toContain(`warning: policy pack ${pack} unreadable`);
    expect(trace.stderr).not.toMatch(/\n\s+at /);
  });

  it('a changed pack restarts the workers on the next `dev up`, and status then shows the new digest', async () => {
    const pid = workersPid()!;
    fs.writeFileSync(pack, text.replace(/^version: .*$/m, 'version: "changed"'));
    const before = await status();
    expect(before.workers.healthy).toBe(false);
    expect(before.workers.detail).toContain('the policy pack changed since they started');

    const up = await factoryCli(['dev', 'up', '--json'], base);
    expect(up.code, up.stderr).toBe(0);
    expect([...JSON.parse(up.stdout).started].sort()).toEqual(['console', 'gateway', 'workers']);
    expect(workersPid()).not.toBe(pid);
    expect(isAlive(pid)).toBe(false);
    const after = await status();
    expect(after.workers.facts.policyPack).toMatchObject({ digest: sha(pack), agrees: true, workers: { digest: sha(pack) } });
  }, 240_000);
});
