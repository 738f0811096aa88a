import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { projectRoot } from '../config/env.ts';
import { createEnvDb } from '../db/connect.ts';
import { temporalUiUrl } from '../dev/components/temporal.ts';
import { devKeyPaths, gatewayUrl, readDevKey } from '../dev/components/gateway.ts';
import { tritonUrl } from '../dev/components/triton.ts';
import { stackUp } from '../dev/stack.ts';
import type { ApprovalStatus } from '../domain/approval.ts';
import type { LifecycleOutcome } from '../domain/lifecycle.ts';
import { LifecycleEndedWithoutOutcome, approvalStatus, decide, lifecycleResult, retryLifecycle, startLifecycle } from '../lifecycle/client.ts';
import { loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { TritonClient } from '../serving/triton.ts';
import { connectClient } from '../temporal.ts';
import { renderRequest, traceRequest } from '../trace/request.ts';
import { renderTrace, traceModel } from '../trace/trace.ts';
import { stackContext } from './dev.ts';
import { renderOutcome } from './lifecycle.ts';
import { CliError, EXIT, escapeForTerminal } from './output.ts';
import { signFor, signingKeyFor, statementSubject } from './sign.ts';

// What the demo prints includes text others sent (comments, reasons): escaped like every human rendering.
const say = (line = '') => process.stdout.write(`${escapeForTerminal(line, { keepNewlines: true })}\n`);
const step = (title: string) => say(`\n== ${title}`);

function headCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: projectRoot, encoding: 'utf8' }).trim();
  } catch {
    throw new CliError('not in a git checkout: pass --commit <sha>', EXIT.usage);
  }
}

/** The main job on embedded defaults: the whole governed lifecycle of a clinical model, narrated. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'bring up the stack and run a full lifecycle: ingest → train → evaluate → register → approve → deploy → infer → trace → infer through the gateway → trace the request',
    )
    .option('--commit <sha>', 'commit SHA recorded as the code version (default: this checkout’s HEAD)')
    .option('--approve-in-ui', 'do not approve from here: wait while you approve in the Temporal Web UI')
    .action(async (opts: { commit?: string; approveInUi?: boolean }) => {
      const ctx = stackContext();
      step('1. The local stack (factory dev up)');
      const up = await stackUp(ctx, { onProgress: (m) => say(`   ${m}`) });
      say(`   ready in ${(up.millis / 1000).toFixed(1)}s`);

      const client = await connectClient(ctx.env);
      const db = createEnvDb(ctx.env, 2, 'reader');
      try {
        const pack = loadPolicyPack(policyPackPath());
        const names = new Map(pack.pack.principals.map((p) => [p.id, p.name]));
        const commitSha = opts.commit ?? headCommit();
        const input = {
          modelName: 'breast-cancer-classifier',
          datasetPath: `${projectRoot}/datasets/breast-cancer-wisconsin/wdbc.csv`,
          commitSha,
          imageDigest: `sha256:${execFileSync('sha256sum', [`${projectRoot}/package-lock.json`], { encoding: 'utf8' }).slice(0, 64)}`,
          riskTier: 'high' as const,
          requester: 'ci@hospital.example',
          developer: 'omar@hospital.example',
        };
        step('2. CI starts the lifecycle (as ci@hospital.example, through the client API `factory lifecycle start` uses)');
        say(`   model ${input.modelName}, commit ${commitSha.slice(0, 12)}, risk tier high, developer omar@hospital.example`);
        say(`   image digest ${input.imageDigest} (stand-in: the digest of package-lock.json; CI passes its image's)`);
        let started: { workflowId: string; existing: boolean };
        try {
          started = await startLifecycle(client, input);
        } catch (err) {
          if (!(err instanceof LifecycleEndedWithoutOutcome)) throw err;
          // This commit's lifecycle failed or was cancelled earlier (a stack restarted mid-run): run it again.
          const retried = await retryLifecycle(client, err.workflowId);
          say(`   the lifecycle for this commit ended without an outcome (${retried.previousStatus}): started it again (\`factory lifecycle retry\`)`);
          started = { workflowId: retried.workflowId, existing: false };
        }
        say(
          `   ${started.existing ? 'found the lifecycle already started for this commit (a retried start never makes a second)' : 'started'}: ${started.workflowId}`,
        );
        say(`   watch it: ${temporalUiUrl(ctx)}/namespaces/${ctx.env.TEMPORAL_NAMESPACE}/workflows/${started.workflowId}`);

        step('3. Ingest → train → evaluate → register');
        let status: ApprovalStatus | undefined;
        let last = '';
        for (;;) {
          status = await approvalStatus(client, started.workflowId).catch(() => undefined);
          if (status && status.stage !== last) {
            say(`   … ${status.stage}`);
            last = status.stage;
          }
          if (status && ['approval', 'deploy', 'deployed', 'rejected'].includes(status.stage)) break;
          await sleep(500);
        }

        if (status.stage === 'approval') {
          step(`4. Approval gate: the high-risk tier needs ${status.requiredRoles.join(', ')}`);
          say(`   candidate ${status.modelDigest}`);
          if (opts.approveInUi) {
            say(`   Open ${temporalUiUrl(ctx)}/namespaces/${ctx.env.TEMPORAL_NAMESPACE}/workflows/${started.workflowId}`);
            say('   → "Send a Signal", name: approve, one payload per role, e.g.:');
            for (const role of status.pendingRoles) {
              const who = pack.pack.principals.find((p) => p.roles.includes(role) && p.id !== input.developer && p.id !== input.requester);
              // The high tier requires signatures: each approver prints the statement, signs it, and gets the JSON.
              say(`     npx factory approval-payload ${started.workflowId} --role ${role} --as ${who?.id} > statement.txt`);
              say(`     ssh-keygen -Y sign -n factory-approval -f ${signingKeyFor(ctx.env, who?.id ?? '') ?? '<key>'} statement.txt`);
              say(
                `     npx factory approval-payload ${started.workflowId} --role ${role} --as ${who?.id} --statement statement.txt --signature statement.txt.sig`,
              );
            }
            say('   waiting for your approvals…');
          } else {
            say('   The approvers below act through the same public interfaces a person uses (printed as such):');
            if (status.pendingRoles.includes('business')) {
              const attempt = await decide(client, started.workflowId, {
                decision: 'approve',
                approver: 'omar@hospital.example',
                role: 'business',
                meaning: 'approval',
                modelDigest: status.modelDigest!,
              });
              say(
                `   [Omar, who developed the model, tries \`factory approve --as omar@hospital.example --role business\`] → ${attempt.accepted ? 'accepted?!' : `refused: ${attempt.reason}`}`,
              );
            }
            const plan: Array<[string, string, 'update' | 'signal']> = [
              ['lena@hospital.example', 'business', 'update'],
              ['sam@hospital.example', 'security', 'signal'],
              ['dana@hospital.example', 'compliance', 'update'],
            ];
            for (const [approver, role, via] of plan.filter(([, r]) => status!.pendingRoles.includes(r))) {
              // Signed with the approver's dev key (`factory dev up` made it): the high tier requires it.
              const keyFile = signingKeyFor(ctx.env, approver);
              const comment = 'demo sign-off';
              const signed = keyFile
                ? await signFor(keyFile, { ...statementSubject(started.workflowId, status), role, meaning: 'approval', decision: 'approve', approver, comment })
                : {};
              const payload = { approver, role, meaning: 'approval' as const, modelDigest: status.modelDigest!, comment, ...signed };
              if (via === 'update') {
                const v = await decide(client, started.workflowId, { decision: 'approve', ...payload });
                say(
                  `   [${names.get(approver)} runs \`factory approve --as ${approver} --role ${role}\` (signed with ${keyFile ?? 'no key'}; update "decide")] → ${v.accepted ? `accepted; pending: ${v.pendingRoles.join(', ') || 'none'}` : `refused: ${v.reason}`}`,
                );
              } else {
                await client.workflow.getHandle(started.workflowId).signal('approve', payload);
                say(
                  `   [${names.get(approver)} sends the signal "approve" with ${JSON.stringify({ approver, role, meaning: 'approval' })}… and a signed statement, as the Web UI does]`,
                );
              }
            }
          }
        }

        step('5. Deploy to Triton');
        const outcome: LifecycleOutcome = await lifecycleResult(client, started.workflowId);
        say(`   ${renderOutcome(outcome)}`);
        if (outcome.outcome !== 'deployed') {
          process.exitCode = EXIT.rejected;
          return;
        }
        const trace = await traceModel(db, `${outcome.modelName}@${outcome.version}`, names);

        step('6. An inference on Triton');
        // The dataset's first sample: its features, and the diagnosis recorded for it (last column).
        const cells = fs.readFileSync(input.datasetPath, 'utf8').split(/\r?\n/)[1]!.split(',');
        const diagnosis = cells.pop() === 'M' ? 'malignant' : 'benign';
        const sample = cells.map(Number);
        const res = await new TritonClient(tritonUrl(ctx.env)).infer(outcome.tritonModel, [sample], outcome.version);
        say(`   POST ${outcome.endpoint}`);
        say(
          `   first WDBC sample (diagnosed ${diagnosis}) → P(malignant) = ${res.outputs[0]![0]!.toFixed(4)}  (model ${res.raw.model_name} v${res.raw.model_version})`,
        );

        step(`7. The trace (\`npx factory trace ${outcome.modelName}@${outcome.version}\`)`);
        say(renderTrace(trace));

        step('8. The same inference through the inference gateway, logged, and traced from its request id');
        const key = readDevKey(ctx.env.FACTORY_HOME);
        if (!key) {
          say('   (no dev key: the policy pack in force has no demo-screening use case)');
        } else {
          const url = `${gatewayUrl(ctx.env)}/v2/models/${encodeURIComponent(outcome.modelName)}/infer`;
          const g = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, sample.length], datatype: 'FP32', data: sample }] }),
            signal: AbortSignal.timeout(30_000),
          });
          const answer = (await g.json()) as { outputs?: Array<{ data: number[] }>; error?: string };
          const requestId = g.headers.get('x-request-id') ?? '';
          say(`   POST ${url}  (Authorization: Bearer <the dev key in ${devKeyPaths(ctx.env.FACTORY_HOME).key}>)`);
          if (g.status !== 200) throw new CliError(`the gateway answered ${g.status}: ${answer.error ?? ''}`, EXIT.failure, 'see `npx factory dev status`');
          say(`   → ${g.status}, P(malignant) = ${Number(answer.outputs?.[0]?.data[0]).toFixed(4)}, x-request-id: ${requestId}`);
          step(`   \`npx factory trace --request ${requestId}\``);
          say(renderRequest(await traceRequest(db, requestId, names)));
          say(`   (the whole lineage follows, as in step 7; the payload: npx factory request payload ${requestId} --purpose "…")`);
        }

        step('Next');
        say(`   Web UI:          ${temporalUiUrl(ctx)}  (filter: LifecycleStage="approval" or PendingRoles="compliance")`);
        say('   verify the trail: npx factory audit verify');
        say('   stop the stack:   npx factory dev down');
      } finally {
        await db.destroy();
        await client.connection.close();
      }
    });
}
