import { EventExchange, injectable, inject } from '@berth/core';

/** What this plugin offers other plugins: a token and a same-named interface. */
export const Greeter = Symbol.for('io.example.Greeter');
export interface Greeter {
  greet(name: string): string;
}

/** Settings read from `[plugins."io.example.greeter.v1.hello"]`. */
export const GreeterSettings = Symbol.for('io.example.GreeterSettings');
export interface GreeterSettings {
  greeting: string;
}

/** The default Greeter: publishes a `/hello/greeted` event for each greeting. */
@injectable()
export class GreeterImpl implements Greeter {
  @inject(GreeterSettings) private readonly settings!: GreeterSettings;
  @inject(EventExchange) private readonly events!: EventExchange;

  greet(name: string): string {
    const text = `${this.settings.greeting}, ${name}!`;
    void this.events
      .publish('default', '/hello/greeted', { typeUrl: 'io.example.Greeting', value: Buffer.from(text) })
      .catch(() => undefined);
    return text;
  }
}
