import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/errors.ts';
import { CliError, EXIT, escapeForTerminal } from './output.ts';

/**
 * zod compiles each object schema into a specialised parser (`new Function`) the first time it
 * parses: worth it in a long-lived worker, pure cost in a command that parses each schema once or
 * twice (it was the largest single item in `factory trace`'s profile). zod reads this global when
 * a schema is built, so it is set here, before any command module (and zod) loads. Same results.
 */
const zodConfig = globalThis as { __zod_globalConfig?: { jitless?: boolean } };
zodConfig.__zod_globalConfig = { ...zodConfig.__zod_globalConfig, jitless: true };

type Registrar = () => Promise<(program: Command) => void>;
const dev: Registrar = async () => (await import('./dev.ts')).registerDev;
const lifecycle: Registrar = async () => (await import('./lifecycle.ts')).registerLifecycle;
const audit: Registrar = async () => (await import('./audit.ts')).registerAudit;
const trace: Registrar = async () => (await import('./trace.ts')).registerTrace;
const demo: Registrar = async () => (await import('./demo.ts')).registerDemo;
const keys: Registrar = async () => (await import('./keys.ts')).registerKeys;
const capacity: Registrar = async () => (await import('./capacity.ts')).registerCapacity;
const sign: Registrar = async () => (await import('./sign.ts')).registerSign;
const gateway: Registrar = async () => (await import('./gateway.ts')).registerGateway;
const history: Registrar = async () => (await import('./audit.ts')).registerHistory;
const retire: Registrar = async () => (await import('./retire.ts')).registerRetire;
const promote: Registrar = async () => (await import('./promote.ts')).registerPromote;
const evidence: Registrar = async () => (await import('./evidence.ts')).registerEvidence;
const inventory: Registrar = async () => (await import('./evidence.ts')).registerInventory;
const governance: Registrar = async () => (await import('./governance.ts')).registerGovernance;
const rollback: Registrar = async () => (await import('./rollback.ts')).registerRollback;
const datasetRead: Registrar = async () => (await import('./governance.ts')).registerDatasetRead;
const monitor: Registrar = async () => (await import('./monitor.ts')).registerMonitor;
const card: Registrar = async () => (await import('./card.ts')).registerCard;
const kpi: Registrar = async () => (await import('./kpi.ts')).registerKpi;
const revalidation: Registrar = async () => (await import('./revalidation.ts')).registerRevalidation;
const consoleCommand: Registrar = async () => (await import('./console.ts')).registerConsole;
/**
 * Each top-level command's module, loaded only when that command runs: `factory trace` must not
 * pay for loading the Temporal client, the S3 SDK and the stack (it answers in well under a second).
 */
const byCommand: Record<string, Registrar> = {
  dev,
  lifecycle,
  status: lifecycle,
  approve: lifecycle,
  reject: lifecycle,
  withdraw: lifecycle,
  trace,
  audit,
  history,
  demo,
  keys,
  capacity,
  'approval-payload': sign,
  policy: sign,
  gateway,
  request: gateway,
  retire,
  promote,
  evidence,
  inventory,
  hold: governance,
  retention: governance,
  rollback,
  drill: rollback,
  dataset: datasetRead,
  monitor,
  card,
  kpi,
  revalidation,
  console: consoleCommand,
};

const program = new Command('factory')
  .description('ai-factory: the governed model lifecycle on Temporal')
  .exitOverride()
  // Commander echoes the offending argument: it is escaped like any other text we print.
  .configureOutput({ outputError: (str, write) => write(escapeForTerminal(str, { keepNewlines: true })) })
  .showHelpAfterError('(run `factory --help` for usage)');

/** gRPC status 14: the server cannot be reached (grpc-js is the client's dependency, not ours). */
const GRPC_UNAVAILABLE = 14;

function say(message: string, next?: string): void {
  process.stderr.write(`${escapeForTerminal(`error: ${message}\n${next ? `next: ${next}\n` : ''}`, { keepNewlines: true })}`);
}

/**
 * Every error that reaches the top becomes one message and an exit code: the expected ones (bad
 * usage, an unknown lifecycle, Temporal down, a failed lifecycle) say what happened and what to do
 * next; an unexpected one says so and how to see its stack. Temporal's modules load only here, on
 * the error path, so `trace` and `dev` stay light.
 */
async function report(err: unknown): Promise<number> {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage; // commander printed it
  if (err instanceof CliError) {
    say(err.message, err.next);
    return err.exitCode;
  }
  if (err instanceof ConfigError) {
    say(err.message);
    return EXIT.usage;
  }
  const debug = !!process.env.FACTORY_DEBUG;
  if (debug) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  const { WorkflowNotFoundError, WorkflowFailedError, isGrpcServiceError, isGrpcDeadlineError } = await import('@temporalio/client');
  if (err instanceof WorkflowNotFoundError) {
    say(`no lifecycle ${err.workflowId}`, 'check the id (lifecycle-<model>-<commit>); list lifecycles in the Web UI');
    return EXIT.notFound;
  }
  if (err instanceof WorkflowFailedError) {
    const { rootCause, renderCause } = await import('../lifecycle/client.ts');
    say(
      `the lifecycle failed: ${err.cause ? renderCause(rootCause(err.cause)) : err.message}`,
      'inspect it with `temporal workflow show -w <id>` or in the Web UI',
    );
    return EXIT.failure;
  }
  const grpc = [err, (err as { cause?: unknown })?.cause].find(isGrpcServiceError);
  if (grpc?.code === GRPC_UNAVAILABLE) {
    say(`cannot reach Temporal at ${process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233'}: ${grpc.details || grpc.message}`, 'start the stack: npx factory dev up');
    return EXIT.unhealthy;
  }
  if (isGrpcDeadlineError(err)) {
    say('Temporal did not answer in time', 'check the stack: npx factory dev status');
    return EXIT.unhealthy;
  }
  if (err instanceof Error && err.name === 'ZodError') {
    say(`invalid input: ${err.message}`);
    return EXIT.usage;
  }
  say(`${(err as Error)?.message ?? String(err)}`, debug ? undefined : 'this was not expected: run with FACTORY_DEBUG=1 for the stack, and report it');
  return EXIT.failure;
}

const wanted = byCommand[process.argv[2] ?? ''];
try {
  // `factory --help` (or an unknown command): every module, each once, so the list never forgets one.
  for (const registrar of wanted ? [wanted] : new Set(Object.values(byCommand))) (await registrar())(program);
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = await report(err);
}
// Clients (gRPC, pg pools) may hold the event loop open; the command is done.
setImmediate(() => process.exit());
