import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Berth, createBerth, createContainer, defaultConfig, EventExchange, Exchange } from '@berth/core';
import { Greeter, GreeterSettings, helloModule, helloPlugin } from './index';

describe('berth-hello-plugin', () => {
  let dir: string;
  let berth: Berth | undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-hello-'));
  });
  afterEach(async () => {
    await berth?.close();
    berth = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loads into an embedded berth with its config table and reports itself', async () => {
    const config = defaultConfig();
    config.plugins['io.example.greeter.v1.hello'] = { greeting: 'ahoy' };
    berth = await createBerth({ root: path.join(dir, 'r'), state: path.join(dir, 's'), config, plugins: [helloPlugin] });
    const [info] = await berth.introspection.plugins(['type==io.example.greeter.v1']);
    expect(info).toMatchObject({ id: 'hello', status: 'ok', exports: { greeting: 'ahoy' }, capabilities: ['greet'] });
    expect(info.requires).toEqual(['io.berth.event.v1']);
  });

  it('rejects a bad config value, naming the key, without stopping the others', async () => {
    const config = defaultConfig();
    config.plugins['io.example.greeter.v1.hello'] = { greeting: 42 };
    berth = await createBerth({ root: path.join(dir, 'r'), state: path.join(dir, 's'), config, plugins: [helloPlugin] });
    const [info] = await berth.introspection.plugins(['id==hello']);
    expect(info.status).toBe('error');
    expect(info.error).toContain('greeting');
    expect(await berth.namespaces.list()).toEqual([]);
  });

  it('greets through its module and publishes an event', async () => {
    const container = createContainer();
    const exchange = new Exchange();
    container.bind(EventExchange).toConstantValue(exchange);
    container.bind(GreeterSettings).toConstantValue({ greeting: 'hi' });
    container.load(helloModule);
    const abort = new AbortController();
    const received = (async () => {
      for await (const env of exchange.subscribe(['topic=="/hello/greeted"'], abort.signal)) {
        abort.abort();
        return Buffer.from(env.event.value).toString();
      }
    })();
    await new Promise((r) => setImmediate(r));
    expect(container.get<Greeter>(Greeter).greet('berth')).toBe('hi, berth!');
    expect(await received).toBe('hi, berth!');
  });
});
