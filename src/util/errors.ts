/**
 * util/errors — the typed errors every layer throws and the exit-code table the CLI maps them to.
 * May import nothing from other layers. Invariant: an expected failure is a LifeboatError with a
 * stable `code`, a plain-language `message` that says what happened and what to do; anything else
 * is a bug and is shown with its stack.
 */

/** Exit codes, restic's table. Stable: scripts depend on them. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  partial: 3,
  noRepository: 10,
  locked: 11,
  wrongPassword: 12,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorCode =
  | 'usage'
  | 'no-repository'
  | 'repository-exists'
  | 'unsupported-version'
  | 'wrong-password'
  | 'locked'
  | 'corrupt'
  | 'not-found'
  | 'no-space'
  | 'io'
  /** The store cannot be written (a write-protected drive, a read-only mount, a DVD). */
  | 'read-only'
  | 'interrupted'
  | 'unsafe-path'
  | 'invalid-argument'
  | 'conflict';

const exitFor: Record<ErrorCode, ExitCode> = {
  usage: ExitCode.usage,
  'invalid-argument': ExitCode.usage,
  'no-repository': ExitCode.noRepository,
  'repository-exists': ExitCode.failure,
  'unsupported-version': ExitCode.failure,
  'wrong-password': ExitCode.wrongPassword,
  locked: ExitCode.locked,
  corrupt: ExitCode.failure,
  'not-found': ExitCode.failure,
  'no-space': ExitCode.failure,
  io: ExitCode.failure,
  'read-only': ExitCode.failure,
  interrupted: ExitCode.interrupted,
  'unsafe-path': ExitCode.failure,
  conflict: ExitCode.failure,
};

export class LifeboatError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LifeboatError';
    this.code = code;
    this.exitCode = exitFor[code];
  }
}

export function isLifeboatError(e: unknown): e is LifeboatError {
  return e instanceof LifeboatError;
}

/** Node system errors carry a string `code` such as ENOENT. */
export function errnoCode(e: unknown): string | undefined {
  const code = typeof e === 'object' && e !== null && 'code' in e ? e.code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** Human-readable byte count: 1.2 GB (decimal units, as drives are sold). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}
