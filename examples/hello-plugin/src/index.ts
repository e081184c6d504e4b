import { ContainerModule, PluginRegistration, PluginType, z } from '@berth/core';
import { Greeter, GreeterImpl, GreeterSettings } from './greeter';

export { Greeter, GreeterImpl, GreeterSettings };

const configSchema = z.object({ greeting: z.string().min(1).default('hello') }).strict();
export type HelloConfig = z.infer<typeof configSchema>;

/** Binds the default Greeter; an embedder may rebind `Greeter` to its own. */
export const helloModule = new ContainerModule((bind) => {
  bind(Greeter).to(GreeterImpl).inSingletonScope();
});

/**
 * A third-party plugin: its own type (reverse DNS, versioned), one id, a config
 * table with defaults, and collaborators wired through berth's shared container.
 */
export const helloPlugin: PluginRegistration<HelloConfig, Greeter> = {
  type: 'io.example.greeter.v1',
  id: 'hello',
  requires: [PluginType.Event],
  config: configSchema,
  module: helloModule,
  init(ctx) {
    const container = ctx.container;
    container.bind(GreeterSettings).toConstantValue({ greeting: ctx.config.greeting });
    ctx.meta.exports.greeting = ctx.config.greeting;
    ctx.meta.capabilities.push('greet');
    return container.get<Greeter>(Greeter);
  },
};

/** berthd loads every registration listed here (see plugin_modules). */
export const plugins = [helloPlugin];
