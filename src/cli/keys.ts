import type { Command } from 'commander';
import path from 'node:path';
import { loadEnv } from '../config/env.ts';
import { SigningKeyError, loadFactoryKey, signingKeyFile, writeNewFactoryKey } from '../signing/factory-key.ts';
import { CliError, EXIT, createOutput } from './output.ts';

/** What is published about a factory key: never the private half. */
interface PublicKeyView {
  keyId: string;
  sshPublicKey: string;
  publicKeyPem: string;
  publicKeyHex: string;
  source: string;
}

function renderKey(k: PublicKeyView): string {
  return [
    `factory signing key (${k.source})`,
    `fingerprint: ${k.keyId}`,
    `openssh:     ${k.sshPublicKey}`,
    `hex:         ${k.publicKeyHex}`,
    // Our own PEM (base64 between two fixed lines): its newlines, escaped like any field's, are put back.
    k.publicKeyPem.replaceAll('\\x0a', '\n').trimEnd(),
  ].join('\n');
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description("the factory's Ed25519 signing key (audit checkpoints, provenance, exported histories)");

  keys
    .command('show')
    .description('print the public key (OpenSSH line, PEM, hex) and its fingerprint; exit 6 when there is no key')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const env = loadEnv();
      let view: PublicKeyView;
      try {
        const k = loadFactoryKey(env);
        const source = env.FACTORY_SIGNING_KEY ? 'FACTORY_SIGNING_KEY' : `file ${signingKeyFile(env)}`;
        view = { keyId: k.keyId, sshPublicKey: k.sshPublicKey, publicKeyPem: k.publicKeyPem, publicKeyHex: k.publicKeyHex, source };
      } catch (err) {
        if (err instanceof SigningKeyError)
          throw new CliError(err.message, EXIT.notFound, 'run `npx factory dev up` (local stack) or set FACTORY_SIGNING_KEY_FILE');
        throw err;
      }
      createOutput(!!opts.json).result(view, renderKey);
    });

  keys
    .command('generate <file>')
    .description('write a new Ed25519 key to <file> (created 0600; an existing file is never overwritten: exit 4) and print its public key')
    .option('--json', 'print JSON')
    .action((file: string, opts: { json?: boolean }) => {
      const abs = path.resolve(file);
      let k;
      try {
        k = writeNewFactoryKey(abs);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST')
          throw new CliError(`${abs} exists; a key is never overwritten`, EXIT.refused, 'choose another file, or remove the old one yourself');
        if (code === 'ENOENT') throw new CliError(`${path.dirname(abs)}: no such directory`, EXIT.usage, 'create the directory first');
        throw err;
      }
      createOutput(!!opts.json).result(
        { keyId: k.keyId, sshPublicKey: k.sshPublicKey, publicKeyPem: k.publicKeyPem, publicKeyHex: k.publicKeyHex, source: `file ${abs}` },
        (v) => `${renderKey(v)}\nUse it: FACTORY_SIGNING_KEY_FILE=${v.source.slice(5)}. Keep it out of the repository and the database.`,
      );
    });
}
