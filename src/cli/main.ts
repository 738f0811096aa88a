import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/env.ts';
import { registerAudit } from './audit.ts';
import { registerDemo } from './demo.ts';
import { registerDev } from './dev.ts';
import { registerLifecycle } from './lifecycle.ts';
import { CliError, EXIT } from './output.ts';

const program = new Command('factory')
  .description('ai-factory: the governed model lifecycle on Temporal')
  .exitOverride()
  .showHelpAfterError('(run `factory --help` for usage)');

registerDev(program);
registerLifecycle(program);
registerAudit(program);
registerDemo(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n${err.next ? `next: ${err.next}\n` : ''}`);
    process.exitCode = err.exitCode;
  } else if (err instanceof ConfigError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = EXIT.usage;
  } else {
    process.stderr.write(`error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = EXIT.failure;
  }
}
// Clients (gRPC, pg pools) may hold the event loop open; the command is done.
setImmediate(() => process.exit());
