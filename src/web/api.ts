/**
 * web — the dashboard page. api.ts holds the types of the dashboard's HTTP API, shared by the
 * server (server/app.ts) and the page (web/client/), typed once. It imports nothing.
 */

export type RunStatus = 'running' | 'ok' | 'warnings' | 'failed' | 'cancelled';

export interface RunView {
  readonly id: number;
  readonly job: string;
  readonly trigger: string;
  readonly started: number;
  readonly finished?: number;
  readonly status: RunStatus;
  readonly message?: string;
  readonly snapshot?: string;
  readonly figures: { readonly files?: number; readonly totalBytes?: number; readonly bytesRead?: number; readonly bytesAdded?: number; readonly seconds?: number; readonly snapshotsRemoved?: number; readonly bytesFreed?: number };
  readonly warnings: number;
}

export interface ProgressView {
  readonly phase: string;
  readonly done: number;
  readonly total?: number;
  readonly files?: number;
  readonly stored?: number;
  /** The file being backed up now. */
  readonly current?: string;
}

export interface JobView {
  readonly name: string;
  /** "Your folders /home/ann" or "The drive /dev/sda (system image)". */
  readonly what: string;
  readonly kind: 'files' | 'image' | 'copy' | 'mirror';
  /** It follows changes all the time (while the scheduler runs) instead of running at times. */
  readonly continuous: boolean;
  readonly repository: string;
  /** The schedule in words. */
  readonly when: string;
  readonly lastRun?: RunView;
  readonly nextRun?: number;
  readonly running?: RunView;
  readonly progress?: ProgressView;
  readonly ok: boolean;
  readonly warning?: string;
}

export interface Overview {
  readonly jobs: readonly JobView[];
  readonly warnings: readonly string[];
}

export interface DestinationView {
  readonly path: string;
  readonly label: string;
  readonly free: number;
  readonly size: number;
  readonly sameDiskAsHome: boolean;
}

export interface SetupInfo {
  readonly home: string;
  readonly destinations: readonly DestinationView[];
}

export interface SetupBody {
  readonly name: string;
  readonly destination: string;
  readonly password: string;
  /** 'home': the home folder; 'folders': `paths`; 'image': the whole drive `device` as a system image. */
  readonly what: 'home' | 'folders' | 'image';
  readonly paths?: readonly string[];
  readonly device?: string;
  /** With 'home' or 'folders': every run also takes a system image of `device` first (Windows 7's "include a system image"). */
  readonly includeImage?: boolean;
  readonly schedule: string;
}

/** The wizard's choices so far (POST /api/setup/check). */
export type SetupCheckBody = Pick<SetupBody, 'destination' | 'what' | 'paths' | 'device' | 'includeImage'>;

export interface SetupCheck {
  /** The chosen folders (or drive) on the same physical disk as the destination. */
  readonly sameDisk: readonly string[];
}

export interface SetupResponse {
  readonly job: string;
  readonly recoveryKey?: string;
}

export interface EstimateView {
  readonly files: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly complete: boolean;
  readonly free?: number;
  readonly mayNotFit?: boolean;
}

export interface SnapshotView {
  readonly id: string;
  readonly time: string;
  readonly kind: string;
  readonly paths: readonly string[];
  readonly size?: number;
}

export interface EntryView {
  readonly name: string;
  readonly type: string;
  readonly size: number;
  readonly mtime?: string;
}

export interface ListingView {
  /** The folder as people know it (the original path for file backups). */
  readonly path: string;
  readonly entries: readonly EntryView[];
  readonly offset: number;
  /** Entries follow this page. */
  readonly more: boolean;
  /** How many entries the folder holds, when counted already (GET …/count counts a big folder). */
  readonly total?: number;
}

export interface CountView {
  readonly total: number;
}

export interface FoundView {
  readonly snapshot: string;
  readonly time: string;
  /** The path inside the snapshot (for list, file and restore), and as it was backed up. */
  readonly path: string;
  readonly shown: string;
  readonly type: string;
  readonly size: number;
  readonly mtime?: string;
}

export interface FindResponse {
  readonly found: readonly FoundView[];
  /** More matched than are shown. */
  readonly more: boolean;
}

export interface RestoreBody {
  readonly path: string;
  /** The folder to restore into (the snapshot's path is kept below it); absent: back where it was backed up from. */
  readonly target?: string;
  /** Back in its original place, files changed since the backup are: kept as they are (default), replaced, or kept with the backed-up copy restored beside them ("x (restored 2026-12-05).odt"). */
  readonly changed?: 'keep' | 'replace' | 'keep-both';
}

export interface RestoreResponse {
  readonly files: number;
  readonly bytes: number;
  readonly targets: readonly string[];
  /** Files left as they were because they changed since the backup (original place, without replace). */
  readonly keptChanged: number;
  /** Files changed since the backup that were kept, with the backed-up copy restored beside them. */
  readonly keptBoth: number;
  /** What could not be restored, in words (the first 20). */
  readonly warnings: readonly string[];
}

export interface SpaceView {
  readonly snapshots: readonly { readonly time: string; readonly job: string; readonly added: number; readonly total: number }[];
  readonly repository: string;
  /** Per job, what it has stored in its repository after each successful run (new data added, less what freeing space removed), oldest first. */
  readonly growth: readonly GrowthView[];
}

export interface GrowthView {
  readonly job: string;
  readonly points: readonly { readonly time: number; readonly stored: number }[];
}

export interface FreeSpacePreview {
  /** The job's rules in words, and the versions they would remove (none pinned). */
  readonly rules: string;
  readonly remove: readonly { readonly id: string; readonly time: string }[];
  readonly keep: number;
}

export interface FreeSpaceResult {
  readonly removed: number;
  readonly freed: number;
}

/** Server-sent events on /api/events. */
export type ServerEvent =
  | { readonly type: 'run-started'; readonly run: RunView }
  | { readonly type: 'progress'; readonly job: string; readonly progress: ProgressView }
  | { readonly type: 'warning'; readonly job: string; readonly message: string }
  | { readonly type: 'notice'; readonly job: string; readonly message: string }
  | { readonly type: 'phase'; readonly job: string; readonly phase: string }
  | { readonly type: 'run-finished'; readonly run: RunView };

export interface ErrorBody {
  readonly error: string;
}
