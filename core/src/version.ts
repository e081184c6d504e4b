/** berth's release version, reported by Version and the CLIs. */
export const BERTH_VERSION = '0.1.0';
/** Source revision; release builds may set BERTH_REVISION in the environment. */
export const BERTH_REVISION = process.env.BERTH_REVISION ?? 'dev';

/** The namespace clients act in unless told otherwise (containerd's default). */
export const DEFAULT_NAMESPACE = 'default';
