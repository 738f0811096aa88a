import pino from 'pino';

/** Structured logs: pretty on a terminal, JSON lines otherwise (CI, log files, collectors). */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info') {
  const pretty = process.stderr.isTTY && !process.env.CI;
  return pino(
    { name, level, base: { pid: process.pid } },
    pretty ? pino.transport({ target: 'pino-pretty', options: { destination: 2, ignore: 'pid,hostname' } }) : pino.destination(2),
  );
}

export type Logger = ReturnType<typeof createLogger>;
