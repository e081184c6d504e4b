import { InvalidArgumentError, type Platform } from '@berth/core';

/** A platform filter as callers give it: `os/arch[/variant]` strings or Platform objects. */
export type PlatformSpec = Platform | string;

// The spellings users type for the same architecture, as containerd normalises them.
function normalizeArchitecture(arch: string, variant: string | undefined): { architecture: string; variant?: string } {
  const a = arch.toLowerCase();
  const v = variant?.toLowerCase() || undefined;
  switch (a) {
    case 'i386':
      return { architecture: '386' };
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return { architecture: 'amd64', variant: v === 'v1' ? undefined : v };
    case 'aarch64':
    case 'arm64':
      return { architecture: 'arm64', variant: v === 'v8' || v === '8' ? undefined : v };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v6' };
    case 'arm':
      if (v === undefined || v === '7') return { architecture: 'arm', variant: 'v7' };
      if (v === '5' || v === '6' || v === '8') return { architecture: 'arm', variant: `v${v}` };
      return { architecture: 'arm', variant: v };
    default:
      return { architecture: a, variant: v };
  }
}

/** The form platforms are compared in: lower case, baseline variants dropped. */
export function normalizePlatform(platform: Platform): Platform {
  const { architecture, variant } = normalizeArchitecture(platform.architecture, platform.variant);
  const os = platform.os.toLowerCase();
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Parses `os/arch[/variant]`; InvalidArgument for anything else. */
export function parsePlatform(spec: string): Platform {
  const parts = spec.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new InvalidArgumentError(`invalid platform ${JSON.stringify(spec)}: expected os/arch[/variant], e.g. linux/arm64`);
  }
  return normalizePlatform({ os: parts[0], architecture: parts[1], variant: parts[2] });
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

export function toPlatforms(specs: ReadonlyArray<PlatformSpec>): Platform[] {
  return specs.map((s) => (typeof s === 'string' ? parsePlatform(s) : normalizePlatform(s)));
}

/**
 * Whether `candidate` is one of `wanted` (already normalised). A wanted platform
 * without a variant takes any variant of its architecture.
 */
export function platformMatches(candidate: Platform, wanted: ReadonlyArray<Platform>): boolean {
  const c = normalizePlatform(candidate);
  return wanted.some(
    (w) => w.os === c.os && w.architecture === c.architecture && (w.variant === undefined || w.variant === c.variant),
  );
}

/** Index of the first wanted platform `candidate` matches (lower is preferred); -1 if none. */
export function platformPreference(candidate: Platform, wanted: ReadonlyArray<Platform>): number {
  return wanted.findIndex((w) => platformMatches(candidate, [w]));
}
