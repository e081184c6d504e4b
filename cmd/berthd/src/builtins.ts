import { corePlugins, PluginRegistration } from '@berth/core';
import { grpcServicePlugins } from '@berth/grpc-services';

/** The plugins berthd ships with, chosen here in one explicit list. */
export const builtinPlugins: PluginRegistration[] = [...corePlugins, ...grpcServicePlugins];
