import { PluginRegistration } from '@berth/core';
import { defaultPlugins } from '@berth/builtins';
import { grpcServicePlugins } from '@berth/grpc-services';

/** The plugins berthd ships with: berth's defaults plus the gRPC services, in one explicit list. */
export const builtinPlugins: PluginRegistration[] = [...defaultPlugins(), ...grpcServicePlugins];
