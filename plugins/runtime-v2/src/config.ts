import * as path from 'path';
import { z } from '@berth/core';

/** The runtime containerd picks when a container names none. */
export const DEFAULT_RUNTIME = 'io.containerd.runc.v2';

const absolutePath = z.string().refine((p) => path.isAbsolute(p), { message: 'must be an absolute path' });

/** One entry of `[plugins."io.berth.runtime.v2.task".runtimes.<name>]`. */
export const runtimeEntrySchema = z
  .object({
    /** The v2 shim binary for this runtime name; default: derived from the name and searched on PATH. */
    shim: absolutePath.optional(),
    /**
     * The OCI runtime binary (runc or a runc-compatible one, by name or path) the
     * runc shim runs, sent as `containerd.runc.v1.Options.binary_name` unless the
     * task's own options name one.
     */
    binary_name: z.string().min(1).optional(),
  })
  .strict();
export type RuntimeEntry = z.output<typeof runtimeEntrySchema>;

/** `[plugins."io.berth.runtime.v2.task"]`. */
export const runtimeV2ConfigSchema = z
  .object({
    /** Runtime for tasks created without one. */
    default_runtime: z.string().min(1).default(DEFAULT_RUNTIME),
    /** Start shims with `-debug` (they log at debug level into the bundle's log FIFO). */
    shim_debug: z.boolean().default(false),
    /** Given to shims as `-publish-binary`: the executable whose `publish` subcommand forwards events (berthd). */
    publish_binary: z.string().default(''),
    /** Named runtimes: a runtime name (as containers carry it) mapped to its shim and OCI runtime binary. */
    runtimes: z.record(z.string().min(1), runtimeEntrySchema).default({}),
  })
  .strict();
export type RuntimeV2Config = z.output<typeof runtimeV2ConfigSchema>;

/** The schema with another `publish_binary` default (berthd fills in its own path). */
export function runtimeV2ConfigSchemaWith(defaults: { publishBinary?: string }) {
  return runtimeV2ConfigSchema.extend({
    publish_binary: z.string().default(defaults.publishBinary ?? ''),
  });
}
