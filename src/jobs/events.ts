/**
 * The one event stream every job emits, rendered by the CLI now and by the dashboard later:
 * progress (one shape for every operation), warnings a person should read, and phase changes.
 */
import { userInfo } from 'node:os';

export type JobEvent =
  | {
      readonly type: 'progress';
      /** What is being done: 'imaging', 'importing', 'restoring', … */
      readonly phase: string;
      /** Bytes (or, with unit 'items', packs, files, …) done and, once known, in all. */
      readonly done: number;
      readonly unit?: 'bytes' | 'items';
      readonly total?: number;
      readonly files?: number;
      /** Bytes added to the repository so far. */
      readonly stored?: number;
      /** The file being worked on (the newest started, where several are at once). */
      readonly current?: string;
    }
  /** Something a person should read: a path that could not be read, a damaged object, … (`kind` sorts them for scripts). */
  | { readonly type: 'warning'; readonly message: string; readonly path?: string; readonly kind?: string }
  /** Worth a line but nothing wrong: a folder left out by rule, … */
  | { readonly type: 'notice'; readonly message: string; readonly path?: string }
  | { readonly type: 'phase'; readonly phase: string };

export interface JobOptions {
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: JobEvent) => void;
}

/** Who runs the job, for the snapshot's `user` field ('' where the platform cannot say). */
export function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

