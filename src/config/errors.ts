/**
 * A bad setting in the environment. Its own module, without the schema: the CLI's entry point
 * recognises it on every command without loading zod first (src/cli/main.ts).
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
