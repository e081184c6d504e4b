/** @berth/snapshotter-native: containerd's native snapshotter, full copies mounted by bind. */
export { NativeSnapshotter, type NativeSnapshotterOptions } from './native-snapshotter';
export { nativeSnapshotterPlugin, nativeSnapshotterConfig, type NativeSnapshotterConfig } from './plugin';
