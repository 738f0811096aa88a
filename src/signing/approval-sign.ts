import { type StatementFields, buildStatement } from '../domain/approval-statement.ts';
import { sshSign } from './ssh-keygen.ts';

export type StatementInput = Omit<StatementFields, 'commentSha256' | 'signedAt'> & { comment?: string; signedAt?: string };

/**
 * Builds the decision's statement (signed now unless `signedAt` says otherwise) and signs it with
 * `ssh-keygen -Y sign -n factory-approval`: what `factory approve|reject` sends, and what the tests send.
 */
export async function signDecision(keyFile: string, input: StatementInput): Promise<{ statement: string; signature: string }> {
  const statement = buildStatement({ ...input, signedAt: input.signedAt ?? new Date().toISOString() });
  return { statement, signature: await sshSign(keyFile, statement) };
}
