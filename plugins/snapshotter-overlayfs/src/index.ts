/**
 * @berth/snapshotter-overlayfs: containerd's overlayfs snapshotter. The
 * library (OverlaySnapshotter) works on its own; overlayfsSnapshotterPlugin
 * registers it with berth.
 */
export {
  OverlaySnapshotter,
  OVERLAY_METADATA_DB,
  UPPERDIR_LABEL,
  type OverlaySnapshotterOptions,
} from './overlay-snapshotter';
export {
  checkOverlaySupport,
  defaultOverlayOptions,
  overlayIndexParameter,
  overlaySkipReason,
  probeOverlay,
  supportsDType,
  type OverlayProbe,
} from './overlay-support';
export { snapshotMounts, type SnapshotLayout } from './mounts';
import { overlayfsSnapshotterPlugin } from './plugin';
export { overlayfsConfigSchema, overlayfsSnapshotterPlugin, type OverlayfsConfig } from './plugin';

/** berthd loads every registration listed here. */
export const plugins = [overlayfsSnapshotterPlugin];
