import { resolve, sep } from 'node:path';
import { mountPoints } from '@berth/sys';

/**
 * Mount points at or below `dir`. A recursive delete descends into whatever
 * is mounted beneath a directory, so a snapshot directory with a mount on or
 * under it (a container rootfs nobody unmounted) must not be deleted: that
 * would empty the mounted filesystem too.
 */
export function mountPointsUnder(dir: string): string[] {
  const base = resolve(dir);
  const prefix = base.endsWith(sep) ? base : base + sep;
  return mountPoints().filter((point) => point === base || point.startsWith(prefix));
}
