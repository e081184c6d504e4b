import type * as grpc from '@grpc/grpc-js';

/** gRPC metadata key naming the lease a call's new resources join, as containerd reads it. */
export const LEASE_METADATA_KEY = 'containerd-lease';

export function leaseOf(call: { metadata: grpc.Metadata }): string | undefined {
  const value = call.metadata.get(LEASE_METADATA_KEY)[0];
  const lease = typeof value === 'string' ? value : value?.toString('utf8');
  return lease || undefined;
}
