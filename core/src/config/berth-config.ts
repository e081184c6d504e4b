import * as path from 'path';
import { z } from 'zod';

/** Where berthd looks for its config file unless told otherwise. */
export const DEFAULT_CONFIG_PATH = '/etc/berth/config.toml';
export const DEFAULT_ROOT = '/var/lib/berth';
export const DEFAULT_STATE = '/run/berth';
export const DEFAULT_GRPC_ADDRESS = '/run/berth/berth.sock';

/** The config file format this code reads (containerd's v2 layout). */
export const CONFIG_VERSION = 2;

const absolutePath = z
  .string()
  .refine((p) => path.isAbsolute(p), { message: 'expected an absolute path' });

/** Plugin ids double as directory names; the same charset as containerd identifiers. */
const identifier = z
  .string()
  .regex(/^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/, { message: 'expected an identifier like "my-plugin"' });

const id = z.number().int().min(0);

const GrpcSection = z
  .object({
    address: z.string().min(1).default(DEFAULT_GRPC_ADDRESS),
    uid: id.default(0),
    gid: id.default(0),
  })
  .strict();

const TtrpcSection = z
  .object({
    /** Empty means `<grpc.address>.ttrpc`, as in containerd. */
    address: z.string().default(''),
  })
  .strict();

const DebugSection = z
  .object({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  })
  .strict();

const ProxyPlugin = z
  .object({
    type: z.enum(['snapshot', 'content', 'diff']),
    address: z.string().min(1),
  })
  .strict();

const pluginModule = z
  .string()
  .min(1)
  // A relative path would resolve against berthd's working directory, which an
  // init system picks; package names and absolute paths mean one thing.
  .refine((m) => !m.startsWith('.'), { message: 'expected an npm package name or an absolute path' });

/**
 * The daemon config file. Every section is `.strict()` so a misspelt key is an
 * error rather than a silently ignored setting. Keys are snake_case in the type
 * too: the object is the file, and `renderConfig` writes it back unchanged.
 */
export const BerthConfigSchema = z
  .object({
    version: z.literal(CONFIG_VERSION).default(CONFIG_VERSION),
    root: absolutePath.default(DEFAULT_ROOT),
    state: absolutePath.default(DEFAULT_STATE),
    /** Third-party plugin packages berthd will `require()`. */
    plugin_modules: z.array(pluginModule).default([]),
    /** Plugin URIs (`<type>.<id>`) not to load. */
    disabled_plugins: z.array(z.string()).default([]),
    /** Plugin URIs without which the daemon must not start. */
    required_plugins: z.array(z.string()).default([]),
    grpc: GrpcSection.default({}),
    ttrpc: TtrpcSection.default({}),
    debug: DebugSection.default({}),
    /** Per-plugin tables keyed by URI; each plugin's own schema checks its table. */
    plugins: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
    proxy_plugins: z.record(identifier, ProxyPlugin).default({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (path.resolve(config.root) === path.resolve(config.state)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['state'], message: 'root and state must be different paths' });
    }
  });

/** A parsed daemon config, every default filled in. */
export type BerthConfig = z.output<typeof BerthConfigSchema>;

/** What may be written in the file (everything optional). */
export type BerthConfigInput = z.input<typeof BerthConfigSchema>;

/** The config berthd runs with when there is no file. */
export function defaultConfig(): BerthConfig {
  return BerthConfigSchema.parse({});
}

/** The ttrpc address plugins are told about: explicit, or `<grpc address>.ttrpc`. */
export function resolveTtrpcAddress(config: Pick<BerthConfig, 'grpc' | 'ttrpc'>): string {
  return config.ttrpc.address || `${config.grpc.address}.ttrpc`;
}
