// Platform parsing and matching live in @berth/core (shared with archives and unpack).
export { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformMatches } from '@berth/core';
