export { runtimeV2Plugin, createRuntimeV2Plugin, type RuntimeV2Defaults } from './plugin';
export { DEFAULT_RUNTIME, runtimeV2ConfigSchema, type RuntimeEntry, type RuntimeV2Config } from './config';
export { ShimManager, type ShimManagerOptions } from './shim-manager';
export { RuntimeResolver, shimBinaryName, withBinaryName, type ResolvedRuntime } from './runtime-resolver';
export { parseShimAddress } from './shim-binary';
export { OCI_PROCESS_TYPE_URL, SHIM_NAMESPACE_METADATA_KEY } from './shim-task';
