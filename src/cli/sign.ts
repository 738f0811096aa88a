import fs from 'node:fs';
import type { Command } from 'commander';
import { type ApprovalStatus, DECISION_LIMITS, MEANINGS, type Decision } from '../domain/approval.ts';
import { buildStatement, parseStatement, STATEMENT_MAX } from '../domain/approval-statement.ts';
import type { Env } from '../config/env.ts';
import { type LoadedPolicyPack, allowedSigners, loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { signDecision } from '../signing/approval-sign.ts';
import { SshSignError, principalKeyFile } from '../signing/ssh-keygen.ts';
import { APPROVAL_NAMESPACE, SSHSIG_LIMITS, parsePublicKeyLine, verifySshSig } from '../signing/sshsig.ts';
import { withTemporal } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

/** The pack in force, or a CLI error that says which and why. */
export function packInForce(): LoadedPolicyPack {
  try {
    return loadPolicyPack(policyPackPath());
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? ((err as Error).message.split('\n\n')[0] ?? '').slice(0, 500);
    throw new CliError(`the policy pack ${policyPackPath()} is unreadable: ${why}`, EXIT.usage, 'fix the pack, or set FACTORY_POLICY_PACK to a valid one');
  }
}

/**
 * The key `factory approve|reject` signs with: `--key`, else the principal's dev key that `factory dev
 * up` made under $FACTORY_HOME/keys/principals/ (when there is one). None: the decision goes unsigned
 * (the gate refuses it where the tier requires a signature, and says so).
 */
export function signingKeyFor(env: Env, approver: string, key?: string): string | undefined {
  if (key) {
    if (!fs.existsSync(key))
      throw new CliError(`no key file at ${key}`, EXIT.usage, 'pass --key <private key file>, or <public key file> whose private half is in ssh-agent');
    return key;
  }
  let dev: string;
  try {
    dev = principalKeyFile(env.FACTORY_HOME, approver);
  } catch {
    return undefined;
  }
  return fs.existsSync(dev) ? dev : undefined;
}

/** What the statement binds that the lifecycle tells: read from its approvalStatus. */
export function statementSubject(workflowId: string, s: ApprovalStatus | undefined, digest?: string) {
  if (!s?.modelDigest || s.version === undefined) {
    throw new CliError(
      `lifecycle ${workflowId} has no candidate yet (stage=${s?.stage ?? 'unknown'})`,
      EXIT.refused,
      `wait for it to reach the approval stage: npx factory status ${workflowId}`,
    );
  }
  return { workflowId, model: s.modelName, version: s.version, artifactDigest: digest ?? s.modelDigest };
}

/** Signs the decision with `ssh-keygen -Y sign`; a failure is the CLI's, with ssh-keygen's reason. */
export async function signFor(keyFile: string, input: Parameters<typeof signDecision>[1]): Promise<{ statement: string; signature: string }> {
  try {
    return await signDecision(keyFile, input);
  } catch (err) {
    if (err instanceof SshSignError) throw new CliError(err.message, EXIT.usage, 'check the key file (or that its private half is in ssh-agent: ssh-add -l)');
    throw err;
  }
}

function readBounded(file: string, max: number, what: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new CliError(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, EXIT.usage);
  }
  if (!st.isFile() || st.size > max) throw new CliError(`the ${what} ${file} is not a file of at most ${max} bytes`, EXIT.usage);
  return fs.readFileSync(file, 'utf8');
}

export function registerSign(program: Command): void {
  program
    .command('approval-payload <workflowId>')
    .description(
      'for the Temporal Web UI: prints the statement to sign (`ssh-keygen -Y sign -n factory-approval`); with --statement and --signature, the exact JSON to send as the signal `approve` or `reject`',
    )
    .requiredOption('--role <role>', 'the role signed for')
    .option('--as <email>', 'the approver the statement names (default: the one principal of the pack holding --role, when only one does)')
    .option('--decision <decision>', 'approve | reject', 'approve')
    .option('--meaning <meaning>', `signature meaning: ${MEANINGS.join(' | ')}`)
    .option('--comment <text>', 'comment recorded with the decision (its sha256 is in the statement)')
    .option('--statement <file>', 'the statement file you signed (printed by this command without --signature)')
    .option('--signature <file>', 'the .sig file `ssh-keygen -Y sign` wrote')
    .option('--json', 'print JSON')
    .action(async (workflowId: string, opts) => {
      const out = createOutput(!!opts.json);
      if (!opts.as) {
        const holders = packInForce().pack.principals.filter((p) => p.roles.includes(opts.role));
        if (holders.length !== 1) {
          throw new CliError(
            `--as <email> is needed: ${holders.length} principals hold the role "${opts.role}"`,
            EXIT.usage,
            holders.map((p) => p.id).join(', ') || undefined,
          );
        }
        opts.as = holders[0]!.id;
      }
      if (opts.decision !== 'approve' && opts.decision !== 'reject')
        throw new CliError('--decision is approve or reject (a withdrawal is not signed)', EXIT.usage);
      const decision = opts.decision as Decision;
      const meaning = opts.meaning ?? (decision === 'reject' ? 'review' : 'approval');
      if (!(MEANINGS as readonly string[]).includes(meaning)) throw new CliError(`--meaning is one of ${MEANINGS.join(', ')}`, EXIT.usage);
      if (opts.comment && opts.comment.length > DECISION_LIMITS.comment)
        throw new CliError(`--comment is at most ${DECISION_LIMITS.comment} characters`, EXIT.usage);
      const status = await withTemporal(async (client) => {
        const { approvalStatus } = await import('../lifecycle/client.ts');
        return approvalStatus(client, workflowId);
      });
      const subject = statementSubject(workflowId, status);
      const fields = { ...subject, role: opts.role as string, meaning, decision, approver: opts.as as string, comment: opts.comment as string | undefined };
      if (!opts.signature) {
        const statement = buildStatement({ ...fields, signedAt: new Date().toISOString() });
        if (opts.json) out.result({ statement, namespace: APPROVAL_NAMESPACE, signal: decision }, () => '');
        else {
          process.stdout.write(statement);
          process.stderr.write(
            [
              `# sign it: save the statement above (exactly) to statement.txt, then`,
              `#   ssh-keygen -Y sign -n ${APPROVAL_NAMESPACE} -f ~/.ssh/id_ed25519 statement.txt`,
              `#   factory approval-payload ${workflowId} --role ${fields.role} --as ${fields.approver} --decision ${decision}${opts.comment ? ' --comment …' : ''} --statement statement.txt --signature statement.txt.sig`,
              '',
            ].join('\n'),
          );
        }
        return;
      }
      if (!opts.statement) throw new CliError('--signature needs --statement <file>: the exact statement you signed', EXIT.usage);
      const statement = readBounded(opts.statement, STATEMENT_MAX, 'statement');
      const signature = readBounded(opts.signature, SSHSIG_LIMITS.armored, 'signature');
      const st = parseStatement(statement);
      if (!st.ok) throw new CliError(`the statement ${opts.statement} is not one this command printed: ${st.reason}`, EXIT.refused);
      // The statement must be this decision's: the same text rebuilt from the lifecycle and the options.
      const expected = buildStatement({ ...fields, signedAt: st.value.signedAt });
      if (expected !== statement) {
        const differs = statement.split('\n').find((line, i) => line !== expected.split('\n')[i]) ?? '';
        throw new CliError(
          `the statement is not for this decision (it says "${differs.slice(0, 200)}")`,
          EXIT.refused,
          'print a new one with the same options, without --signature',
        );
      }
      const v = verifySshSig(signature, statement);
      if (!v.ok) throw new CliError(`the signature does not verify: ${v.reason}`, EXIT.refused);
      const principal = packInForce().pack.principals.find((p) => p.id.toLowerCase() === fields.approver.toLowerCase());
      const own = (principal?.keys ?? []).map(parsePublicKeyLine).some((k) => k.ok && k.value.fingerprint === v.value.publicKey.fingerprint);
      if (!own) throw new CliError(`the key ${v.value.publicKey.fingerprint} is not one of ${fields.approver}'s keys in the policy pack`, EXIT.refused);
      const payload = {
        approver: fields.approver,
        role: fields.role,
        meaning,
        modelDigest: subject.artifactDigest,
        ...(opts.comment ? { comment: opts.comment as string } : {}),
        statement,
        signature,
      };
      if (opts.json) out.result({ signal: decision, payload }, () => '');
      else {
        process.stdout.write(`${JSON.stringify(payload)}\n`);
        process.stderr.write(
          `# In the Temporal Web UI: open ${workflowId}, "Send a Signal", name: ${decision}, paste the line above as the input. Signed with ${v.value.publicKey.fingerprint}.\n`,
        );
      }
    });

  const policy = program.command('policy').description('the policy pack in force');
  policy
    .command('allowed-signers')
    .description(
      "the approvers' public keys as an ssh-keygen allowed_signers file: `ssh-keygen -Y verify -f <it> -I <approver> -n factory-approval -s <sig> < statement`",
    )
    .action(() => {
      process.stdout.write(allowedSigners(packInForce().pack));
    });
}
