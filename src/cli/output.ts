import { failureMeaning } from '../domain/failure-types.ts';

/** Exit codes of the factory CLI: stable, for CI scripts (README, "Exit codes"). */
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

/** The exit code for a workflow that ended with this failure type (src/domain/failure-types.ts). */
export function exitForFailure(type: string): (typeof EXIT)[keyof typeof EXIT] {
  const meaning = failureMeaning(type);
  return meaning === 'refused' ? EXIT.refused : meaning === 'tampered' ? EXIT.tampered : meaning === 'not-found' ? EXIT.notFound : EXIT.failure;
}

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

/**
 * What a terminal must never receive from text someone else wrote (comments, reasons, approver
 * strings, failure messages): C0 controls (ESC starts colour, cursor and title sequences; BEL ends
 * OSC), DEL, C1 controls (0x9b is a one-byte CSI on some terminals), the bidi embeddings, overrides
 * and isolates that reorder what a reviewer reads (U+061C, U+200E/F, U+202A–202E, U+2066–2069),
 * the Unicode line and paragraph separators, and lone surrogates (not text at all). Matched per
 * UTF-16 code unit on purpose: a lone surrogate is only visible that way.
 */
const UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const UNSAFE_BUT_NEWLINE =
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function escapeUnit(ch: string): string {
  const code = ch.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * Makes text safe to print on a terminal: every unsafe code unit becomes a visible escape (`\x1b`,
 * `\u202e`, `\ud800`), so the reader sees that something was there and what. A field rendered
 * inside a line escapes newlines too (no forged lines); `keepNewlines` is for whole renderings,
 * whose own line breaks are ours.
 */
export function escapeForTerminal(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return text.replace(opts.keepNewlines ? UNSAFE_BUT_NEWLINE : UNSAFE, escapeUnit);
}

/** A copy of a value with every string in it (keys too) escaped for the terminal. */
export function escapeDeep<T>(value: T): T {
  if (typeof value === 'string') return escapeForTerminal(value) as T;
  if (Array.isArray(value)) return value.map((v) => escapeDeep(v)) as T;
  if (value !== null && typeof value === 'object' && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [escapeForTerminal(k), escapeDeep(v)])) as T;
  }
  return value;
}

export interface Output {
  json: boolean;
  /**
   * The command's result: JSON on stdout with --json (the data unchanged), else the human rendering.
   * The renderer is handed a copy whose strings are already escaped for the terminal, and its
   * output is escaped once more (keeping its line breaks), so no renderer can forget either.
   */
  result<T>(value: T, human: (safe: T) => string): void;
  /** Progress for people; silent under --json so stdout stays one JSON document. */
  progress(line: string): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${escapeForTerminal(human(escapeDeep(value)), { keepNewlines: true })}\n`);
    },
    progress(line) {
      if (!json) process.stderr.write(`${escapeForTerminal(line, { keepNewlines: true })}\n`);
    },
  };
}
