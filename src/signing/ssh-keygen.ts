import { execFile } from 'node:child_process';
import { APPROVAL_NAMESPACE, SSHSIG_LIMITS } from './sshsig.ts';

/**
 * `ssh-keygen -Y sign` as a subprocess: the approver's own tool signs, with a private key file or, when
 * `keyFile` is a public key, with its private half in ssh-agent (SSH_AUTH_SOCK). The environment is an
 * allow-list: the CLI's credentials (database, S3) never reach it.
 */
export function sshKeygenEnv(source: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = { PATH: source.PATH ?? '/usr/local/bin:/usr/bin:/bin' };
  for (const k of ['HOME', 'SSH_AUTH_SOCK', 'LANG', 'LC_ALL'] as const) if (source[k] !== undefined) env[k] = source[k]!;
  return env;
}

export class SshSignError extends Error {
  override name = 'SshSignError';
}

/** Signs `message` in the approval namespace; returns the armored signature (`-----BEGIN SSH SIGNATURE-----`). */
export function sshSign(keyFile: string, message: string, { namespace = APPROVAL_NAMESPACE, timeoutMs = 30_000 } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'ssh-keygen',
      ['-q', '-Y', 'sign', '-f', keyFile, '-n', namespace],
      { env: sshKeygenEnv(), timeout: timeoutMs, maxBuffer: SSHSIG_LIMITS.armored * 2 },
      (err, stdout, stderr) => {
        if (err) {
          // ssh-keygen's own message names the key file and the cause (no key content): its first line.
          const why = String(stderr).trim().split('\n')[0]?.slice(0, 300) || (err as Error).message.slice(0, 300);
          reject(new SshSignError(`ssh-keygen -Y sign failed with ${keyFile}: ${why}`));
          return;
        }
        resolve(String(stdout));
      },
    );
    child.stdin?.end(message);
  });
}

/**
 * Where a principal's key lives under FACTORY_HOME: `factory dev up` generates one per principal of the
 * pack there (src/dev/dev-keys.ts), and `factory approve` uses it when no `--key` is given. The file name
 * is the principal's id, lower-cased (ids are e-mail addresses: no separators).
 */
export function principalKeyFile(home: string, principalId: string): string {
  const id = principalId.toLowerCase();
  if (!/^[a-z0-9._%+@-]{1,254}$/.test(id)) throw new SshSignError(`no key file name for the principal id "${id.slice(0, 80)}"`);
  return `${home.replace(/\/+$/, '')}/keys/principals/${id}`;
}
