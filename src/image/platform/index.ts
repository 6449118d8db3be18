/** Chooses the platform implementation for this process. */
import { linuxPlatform } from './linux.js';
import { portablePlatform, type Platform } from './platform.js';

export type { MountedFilesystem, Platform } from './platform.js';
export { portablePlatform, probeSizeByReading } from './platform.js';

/** The platform this process runs on. */
export function currentPlatform(): Platform {
  return process.platform === 'linux' ? linuxPlatform : portablePlatform;
}
