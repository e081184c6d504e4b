import type { Platform } from '../content/types';
import { InvalidArgumentError } from '../errdefs';

/** A platform as callers give it: `os/arch[/variant]` or a Platform. */
export type PlatformSpec = Platform | string;

// Node's names for architectures and OSes differ from Go's, which OCI uses.
const nodeArchToOci: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
};
const nodeOsToOci: Record<string, string> = { win32: 'windows', sunos: 'solaris' };

/** containerd's normalisation: the aliases people type, mapped to OCI names. */
function normalizeArch(arch: string, variant: string | undefined): { architecture: string; variant?: string } {
  const a = arch.toLowerCase();
  const v = variant?.toLowerCase() || undefined;
  switch (a) {
    case 'i386':
      return { architecture: '386' };
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      // v1 is amd64's baseline, the same as no variant.
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
export function normalizePlatform(p: Platform): Platform {
  const { architecture, variant } = normalizeArch(p.architecture, p.variant);
  const out: Platform = { os: p.os.toLowerCase() === 'macos' ? 'darwin' : p.os.toLowerCase(), architecture };
  if (variant) out.variant = variant;
  return out;
}

/** Parses `os/arch[/variant]` (e.g. `linux/arm64`, `linux/arm/v7`); InvalidArgument otherwise. */
export function parsePlatform(spec: string): Platform {
  const parts = spec.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new InvalidArgumentError(`invalid platform ${JSON.stringify(spec)}: expected os/arch[/variant], e.g. linux/arm64`);
  }
  return normalizePlatform({ os: parts[0], architecture: parts[1], variant: parts[2] });
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

export function toPlatforms(specs: ReadonlyArray<PlatformSpec>): Platform[] {
  return specs.map((s) => (typeof s === 'string' ? parsePlatform(s) : normalizePlatform(s)));
}

/** The platform this process runs on, in OCI terms (linux/amd64 on x64 Linux). */
export function hostPlatform(): Platform {
  const os = nodeOsToOci[process.platform] ?? process.platform;
  const architecture = nodeArchToOci[process.arch] ?? process.arch;
  let variant: string | undefined;
  if (architecture === 'arm') {
    const armVersion = (process.config.variables as { arm_version?: string }).arm_version;
    variant = armVersion ? `v${armVersion}` : 'v7';
  }
  return normalizePlatform({ os, architecture, variant });
}

/**
 * Whether an image's platform satisfies a wanted one: same OS and architecture,
 * and the same variant when the wanted platform names one (an arm/v7 host also
 * runs older arm variants).
 */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  if (w.variant && w.variant !== c.variant) {
    return w.architecture === 'arm' && !!c.variant && c.variant < w.variant;
  }
  return true;
}

/** Index of the first wanted platform `candidate` matches (lower is preferred); -1 if none. */
export function platformPreference(candidate: Platform, wanted: ReadonlyArray<Platform>): number {
  return wanted.findIndex((w) => platformMatches(w, candidate));
}
