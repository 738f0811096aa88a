import fs from 'node:fs';
import path from 'node:path';
import { loadEnv } from '../src/config/env.ts';
import { writeNewFactoryKey } from '../src/signing/factory-key.ts';

/**
 * Tests run the factory with a signing key, as `factory dev up` does: when neither FACTORY_SIGNING_KEY
 * nor FACTORY_SIGNING_KEY_FILE is set, $FACTORY_HOME/keys/factory-signing.pem (made once, 0600) is
 * named in process.env, so the stack's workers, the test's own workers and the CLI all inherit it.
 */
export function ensureTestSigningKey(): string | undefined {
  if (process.env.FACTORY_SIGNING_KEY || process.env.FACTORY_SIGNING_KEY_FILE) return process.env.FACTORY_SIGNING_KEY_FILE;
  const file = path.join(loadEnv().FACTORY_HOME, 'keys', 'factory-signing.pem');
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    writeNewFactoryKey(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  process.env.FACTORY_SIGNING_KEY_FILE = file;
  return file;
}

ensureTestSigningKey();
