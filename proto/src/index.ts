// The public surface of @berth/proto. Generated modules are exposed as
// namespaces because several proto packages reuse message names
// (Envelope, ForwardRequest, Info, Status, ...).

export * as versionV1 from './gen/containerd/services/version/v1/version';
export * as namespacesV1 from './gen/containerd/services/namespaces/v1/namespaces';
export * as introspectionV1 from './gen/containerd/services/introspection/v1/introspection';
export * as eventsV1 from './gen/containerd/services/events/v1/events';
export * as eventsTtrpcV1 from './gen/containerd/services/events/ttrpc/v1/events';
/** containerd.events.* payloads (namespaces, containers, content, snapshots, tasks). */
export * as containerdEvents from './gen/containerd/events/events';
/** Image events, which containerd declares in containerd.services.images.v1. */
export * as imageEventsV1 from './gen/containerd/services/images/v1/image_events';
export * as containerdTypes from './gen/containerd/types/types';
export * as contentV1 from './gen/containerd/services/content/v1/content';
export * as imagesV1 from './gen/containerd/services/images/v1/images';
export * as leasesV1 from './gen/containerd/services/leases/v1/leases';
export * as snapshotsV1 from './gen/containerd/services/snapshots/v1/snapshots';
export * as diffV1 from './gen/containerd/services/diff/v1/diff';
export * as containersV1 from './gen/containerd/services/containers/v1/containers';
export * as tasksV1 from './gen/containerd/services/tasks/v1/tasks';
/** containerd.v1.types: task Status enum, Process, ProcessInfo. */
export * as taskTypesV1 from './gen/containerd/v1/types/task';
/** The runtime v2 shim API (containerd.task.v2.Task), served over ttrpc. */
export * as shimTaskV2 from './gen/containerd/task/v2/shim';
export * as runcOptionsV1 from './gen/containerd/runc/v1/options';
export * as cgroupsV1Metrics from './gen/containerd/cgroups/v1/metrics';
export * as cgroupsV2Metrics from './gen/containerd/cgroups/v2/metrics';
/** ttrpc frame payloads: Request, Response, KeyValue. */
export * as ttrpcEnvelope from './gen/ttrpc/ttrpc';
/** berth's own daemon-side transfers: pull, push, import, export with progress. */
export * as transferV1 from './gen/berth/services/transfer/v1/transfer';
export * as healthV1 from './gen/grpc/health/v1/health';
export * as rpcStatus from './gen/google/rpc/status';

export { Any } from './gen/google/protobuf/any';
export { Empty } from './gen/google/protobuf/empty';
export { Timestamp } from './gen/google/protobuf/timestamp';
export { FieldMask } from './gen/google/protobuf/field_mask';

export type { MessageCodec } from './typeurl';
export { typeNameFromUrl, packAny, unpackAny, isAnyOf } from './typeurl';
export type { EventCodec, EventTypeName, DecodedEvent } from './events';
export { eventCodecs, eventCodecFor, decodeEvent, eventToJSON } from './events';
export { goZeroTime, isUnsetTime } from './timestamps';
