import { platformMatches as matches, type Platform } from '@berth/core';

// Parsing and normalising platforms is shared through @berth/core.
export { formatPlatform, normalizePlatform, parsePlatform, platformPreference, toPlatforms, type PlatformSpec } from '@berth/core';

/** Whether `candidate` is one of `wanted`. */
export function platformMatches(candidate: Platform, wanted: ReadonlyArray<Platform>): boolean {
  return wanted.some((w) => matches(w, candidate));
}
