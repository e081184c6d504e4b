import { Command } from 'commander';
import type { PullOptions, RegistryOptions } from '@berth/core';

export interface RegistryFlags {
  plainHttp?: boolean;
  user?: string;
  hostsDir?: string;
  skipVerify?: boolean;
  platform?: string[];
  allPlatforms?: boolean;
  progressTimeout?: number;
}

/** The registry flags ctr uses on pull, fetch and push. */
export function addRegistryFlags(cmd: Command): Command {
  return cmd
    .option('--plain-http', 'talk to the registry over plain HTTP')
    .option('-u, --user <user:password>', 'registry credentials')
    .option('--hosts-dir <dir>', 'directory of certs.d/<host>/hosts.toml files')
    .option('-k, --skip-verify', 'skip TLS certificate verification')
    .option('--platform <os/arch>', 'platform to pull (repeatable); default the host\'s', (v: string, acc: string[] = []) => [...acc, v])
    .option('--all-platforms', 'pull every platform of an index')
    .option('--progress-timeout <seconds>', 'abort when no progress is made this long', Number);
}

export function registryOptions(flags: RegistryFlags): RegistryOptions {
  return {
    plainHttp: flags.plainHttp,
    credentials: flags.user,
    hostsDir: flags.hostsDir,
    skipVerify: flags.skipVerify,
    progressTimeoutMs: flags.progressTimeout ? flags.progressTimeout * 1000 : undefined,
  };
}

export function pullOptions(flags: RegistryFlags): PullOptions {
  return { platforms: flags.platform, allPlatforms: flags.allPlatforms, registry: registryOptions(flags) };
}
