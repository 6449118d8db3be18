/** How the CLI shows times: local time with its offset from UTC, in every command (snapshots, ls -l, find, image info, forget). */

/** `2026-12-05 16:03:12 +01:00` for an ISO string, a Date, or nanoseconds since the epoch. */
export function localTime(t: string | Date | bigint): string {
  const d = typeof t === 'bigint' ? new Date(Number(t / 1_000_000n)) : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (n: number) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${sign}${p(Math.floor(a / 60))}:${p(a % 60)}`;
}
