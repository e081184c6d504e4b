import { FailedPreconditionError } from '../errdefs';

/** Brand checked instead of `instanceof`, so a second copy of @berth/core still agrees. */
const skipBrand = Symbol.for('io.berth.PluginSkipError');

/**
 * Thrown from a plugin's `init` when this host cannot run it (no overlayfs, wrong
 * OS, missing binary). The loader records the plugin as 'skipped' with `reason`
 * and carries on; only a plugin listed in `required_plugins` makes that fatal.
 */
export class PluginSkipError extends FailedPreconditionError {
  readonly reason: string;

  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.reason = reason;
    Object.defineProperty(this, skipBrand, { value: true });
  }

  override get name(): string {
    return 'PluginSkipError';
  }
}

/**
 * Whether `err`, or an error in its `cause` chain, is a PluginSkipError, so a
 * plugin may wrap the skip in its own error as with containerd's ErrSkipPlugin.
 */
export function isPluginSkip(err: unknown): boolean {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 32; depth++) {
    if ((cur as Record<symbol, unknown>)[skipBrand] === true) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}
