import fs from 'node:fs';
import path from 'node:path';
import { type Env, projectRoot } from '../../config/env.ts';
import { gatewayUrl } from '../../gateway/address.ts';
import { createKey, readKeysFile, writeKeysFile } from '../../gateway/keys.ts';
import { loadPolicyPack } from '../../policy/pack.ts';
import type { Component, StackContext } from '../component.ts';
import { nodeEntrypoint } from '../node.ts';
import { newestSourceMtime } from '../newest-source.mjs';
import { ownedPid, processFiles, startDetached } from '../process.ts';
import { packInUse } from '../../process/worker-ready.ts';

export { gatewayUrl };

/** The local stack's dev key: the key itself (0600, for the demo) and the keys file holding its hash. */
export function devKeyPaths(home: string): { key: string; keysFile: string } {
  const dir = path.join(home, 'gateway');
  return { key: path.join(dir, 'dev-key'), keysFile: path.join(dir, 'dev-keys.yaml') };
}

export const DEV_USE_CASE = 'demo-screening';
export const DEV_PRINCIPAL = 'ci@hospital.example';

/**
 * Makes the dev key once, for the pack's demo use case (when the pack has it): the key is written
 * to $FACTORY_HOME/gateway/dev-key (0600), its hash to dev-keys.yaml, which the gateway reads beside
 * the pack. Returns the keys file, or undefined when FACTORY_GATEWAY_KEYS_FILE names another.
 */
export function ensureDevKey(env: Env, packFile: string): string | undefined {
  if (env.FACTORY_GATEWAY_KEYS_FILE) return env.FACTORY_GATEWAY_KEYS_FILE;
  const paths = devKeyPaths(env.FACTORY_HOME);
  const pack = loadPolicyPack(packFile).pack;
  if (!(pack.useCases ?? []).some((u) => u.name === DEV_USE_CASE)) return undefined;
  fs.mkdirSync(path.dirname(paths.key), { recursive: true, mode: 0o700 });
  const ok = fs.existsSync(paths.key) && fs.existsSync(paths.keysFile) && readKeysFile(paths.keysFile).length > 0;
  if (!ok) {
    const k = createKey(DEV_PRINCIPAL, DEV_USE_CASE);
    fs.writeFileSync(paths.key, `${k.key}\n`, { mode: 0o600 });
    writeKeysFile(paths.keysFile, [k.entry]);
  }
  return paths.keysFile;
}

/** The dev key, for the demo; undefined when the stack has none. */
export function readDevKey(home: string): string | undefined {
  try {
    return fs.readFileSync(devKeyPaths(home).key, 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function liveness(ctx: StackContext): Promise<{ policyPack?: string } | undefined> {
  try {
    const res = await fetch(`${gatewayUrl(ctx.env)}/v2/health/live`, { signal: AbortSignal.timeout(1_000) });
    const body = (await res.json()) as { service?: string; policyPack?: string };
    return res.ok && body.service === 'ai-factory-gateway' ? body : undefined;
  } catch {
    return undefined;
  }
}

/** The inference gateway (src/gateway/): KServe v2 in front of Triton, every request authenticated and logged. */
export const gateway: Component = {
  name: 'gateway',
  startTimeoutMs: 60_000,
  hint: 'check that FACTORY_GATEWAY_PORT is free and the policy pack is valid; the gateway log says why it stopped',
  endpoint: (ctx) => gatewayUrl(ctx.env),
  binds(ctx) {
    const local = [{ host: ctx.env.FACTORY_GATEWAY_HOST, port: ctx.env.FACTORY_GATEWAY_PORT, variable: 'FACTORY_GATEWAY_PORT' }];
    if (!ctx.env.FACTORY_GATEWAY_URL) return local;
    const url = new URL(ctx.env.FACTORY_GATEWAY_URL);
    return [{ host: url.hostname, port: Number(url.port || 80), variable: 'FACTORY_GATEWAY_URL' }, ...local];
  },
  /** Answering, with the pack in force and the current code: a gateway on a changed pack (new keys, use cases) or older code is restarted by `up`. */
  async healthy(ctx) {
    const live = await liveness(ctx);
    const pack = packInUse();
    if (live === undefined || ('digest' in pack && live.policyPack !== pack.digest)) return false;
    // Like the workers: one of ours started before the code changed runs the old code.
    const files = processFiles(ctx.env.FACTORY_HOME, 'gateway');
    return ownedPid(files) === undefined || fs.statSync(files.pidFile).mtimeMs >= newestSourceMtime(projectRoot);
  },
  ready: async (ctx) => (await liveness(ctx)) !== undefined,
  async start(ctx: StackContext) {
    const pack = packInUse().path;
    const keysFile = ensureDevKey(ctx.env, pack);
    const { command, args } = nodeEntrypoint('src/gateway/run.ts');
    startDetached(processFiles(ctx.env.FACTORY_HOME, 'gateway'), command, args, {
      env: {
        ...process.env,
        FACTORY_HOME: ctx.env.FACTORY_HOME,
        FACTORY_POLICY_PACK: pack,
        ...(keysFile ? { FACTORY_GATEWAY_KEYS_FILE: keysFile } : {}),
      },
    });
  },
  async describe(ctx) {
    try {
      const res = await fetch(`${gatewayUrl(ctx.env)}/v2/health/ready`, { signal: AbortSignal.timeout(1_000) });
      const body = (await res.json()) as { database?: boolean; triton?: boolean };
      return `ready: database ${body.database ? 'ok' : 'DOWN'}, triton ${body.triton ? 'ok' : 'DOWN'}${readDevKey(ctx.env.FACTORY_HOME) ? `; dev key ${devKeyPaths(ctx.env.FACTORY_HOME).key}` : ''}`;
    } catch {
      return undefined;
    }
  },
};
