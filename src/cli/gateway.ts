import os from 'node:os';
import type { Command } from 'commander';
import { sql } from 'kysely';
import { createKey } from '../gateway/keys.ts';
import { readPayload } from '../gateway/request-log.ts';
import { servingRoutes } from '../gateway/routes.ts';
import { gatewayKeyProblem, loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { findRequest } from '../trace/request.ts';
import { TraceNotFound } from '../trace/trace.ts';
import { withDb } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

const PURPOSE = /^[^\p{Cc}]{3,500}$/u;

export function registerGateway(program: Command): void {
  const gateway = program.command('gateway').description('the inference gateway: API keys and what it serves');
  const key = gateway.command('key').description("the gateway's API keys (the pack holds only their hashes)");
  key
    .command('create')
    .description('make a new API key for a principal and a use case of the pack in force: prints the key ONCE and the line to add to the pack')
    .requiredOption('--principal <email>', 'who calls (a principal of the pack)')
    .requiredOption('--use-case <name>', 'what for (a use case of the pack: it names the models the key may call)')
    .option('--json', 'print JSON')
    .action(async (opts: { principal: string; useCase: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const loaded = loadPolicyPack(policyPackPath());
      let k;
      try {
        k = createKey(opts.principal, opts.useCase);
      } catch {
        throw new CliError('the principal must be an email and the use case a name (letters, digits, _ . -)', EXIT.usage);
      }
      const why = gatewayKeyProblem(loaded.pack, k.entry);
      if (why) throw new CliError(`${why} (${loaded.source})`, EXIT.usage, 'add it to the pack first, or name one it has');
      out.result({ key: k.key, entry: k.entry, packLine: k.packLine, pack: loaded.source }, (r) =>
        [
          `API key (shown once; store it in the caller's secret store): ${r.key}`,
          `add under gatewayKeys: in ${r.pack} (then restart the gateway: \`factory dev up\` or your deployment):`,
          r.packLine,
        ].join('\n'),
      );
    });

  gateway
    .command('routes')
    .description('what the gateway serves per model now (the route a rollback switches)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const out = createOutput(!!opts.json);
      const routes = await withDb((db) => servingRoutes(db));
      out.result({ routes }, (r) =>
        r.routes.length
          ? r.routes
              .map(
                (x) =>
                  `${x.modelName}@${x.version}  ${x.routeState}  registry=${x.registryState}  risk=${x.riskTier}  Triton ${x.tritonModel} v${x.tritonVersion}  ${x.artifactDigest}  since ${x.switchedAt} (${x.reason})`,
              )
              .join('\n')
          : '(no model is served)',
      );
    });

  const request = program.command('request').description('requests the gateway logged');
  request
    .command('payload <requestId>')
    .description("a request's inputs and outputs from the restricted bucket; the read (who, when, purpose) is recorded first")
    .requiredOption('--purpose <text>', 'why you read it (recorded; 3 to 500 characters, no control characters)')
    .option('--as <who>', 'who reads (recorded; default: this user@host)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { purpose: string; as?: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      if (!PURPOSE.test(opts.purpose)) throw new CliError('--purpose must be 3 to 500 characters without control characters', EXIT.usage);
      const reader = opts.as ?? `${os.userInfo().username}@${os.hostname()}`;
      if (!PURPOSE.test(reader) || reader.length > 200) throw new CliError('--as must be 3 to 200 characters without control characters', EXIT.usage);
      const { createS3 } = await import('../storage/s3.ts');
      const result = await withDb(async (db, env) => {
        let row;
        try {
          row = await findRequest(db, id);
        } catch (err) {
          if (err instanceof TraceNotFound) throw new CliError(err.message, EXIT.notFound);
          throw err;
        }
        if (!row) throw new CliError(`no logged request ${id.slice(0, 80)}`, EXIT.notFound, 'use the x-request-id header the gateway returned');
        if (!row.payload_uri) throw new CliError(`request ${row.request_id} has no payload (${row.outcome}: only served requests keep one)`, EXIT.notFound);
        // The read is recorded before the payload is fetched: a read nobody recorded never happens.
        const read = await sql<{ id: string; read_at: Date }>`
          INSERT INTO payload_reads (request_id, reader, purpose, payload_uri) VALUES (${row.request_id}, ${reader}, ${opts.purpose}, ${row.payload_uri})
          RETURNING id, read_at`.execute(db);
        const s3 = createS3(env);
        try {
          const payload = await readPayload(s3, row.payload_uri, row.request_id);
          return { read: { id: read.rows[0]!.id, reader, purpose: opts.purpose, at: new Date(read.rows[0]!.read_at).toISOString() }, payload };
        } finally {
          s3.destroy();
        }
      }, 'worker');
      out.result(result, (r) =>
        [`read recorded: #${r.read.id} by ${r.read.reader} at ${r.read.at} for "${r.read.purpose}"`, JSON.stringify(r.payload, null, 2)].join('\n'),
      );
    });
}
