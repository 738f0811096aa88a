import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/env.ts';
import { CliError, EXIT } from './output.ts';

type Registrar = () => Promise<(program: Command) => void>;
const dev: Registrar = async () => (await import('./dev.ts')).registerDev;
const lifecycle: Registrar = async () => (await import('./lifecycle.ts')).registerLifecycle;
const audit: Registrar = async () => (await import('./audit.ts')).registerAudit;
const demo: Registrar = async () => (await import('./demo.ts')).registerDemo;
/**
 * Each top-level command's module, loaded only when that command runs: `factory trace` must not
 * pay for loading the Temporal client, the S3 SDK and the stack (it answers in well under a second).
 */
const byCommand: Record<string, Registrar> = { dev, lifecycle, status: lifecycle, approve: lifecycle, reject: lifecycle, trace: audit, audit, demo };

const program = new Command('factory')
  .description('ai-factory: the governed model lifecycle on Temporal')
  .exitOverride()
  .showHelpAfterError('(run `factory --help` for usage)');

const wanted = byCommand[process.argv[2] ?? ''];
for (const registrar of wanted ? [wanted] : [dev, lifecycle, audit, demo]) (await registrar())(program);

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
