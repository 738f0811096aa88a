/** Exit codes of the factory CLI: stable, for CI scripts. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  unhealthy: 3,
  refused: 4,
  rejected: 5,
  notFound: 6,
  tampered: 7,
} as const;

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
    readonly next?: string,
  ) {
    super(message);
  }
}

export interface Output {
  json: boolean;
  /** The command's result: JSON on stdout with --json, else the human rendering. */
  result(value: unknown, human: () => string): void;
  /** Progress for people; silent under --json so stdout stays one JSON document. */
  progress(line: string): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
    },
    progress(line) {
      if (!json) process.stderr.write(`${line}\n`);
    },
  };
}
