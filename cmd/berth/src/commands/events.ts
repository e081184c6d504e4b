import { Command } from 'commander';
import { eventToJSON } from '@berth/proto';
import type { CommandContext } from '../cli';

export function registerEventCommands(program: Command, ctx: CommandContext, setExitCode: (code: number) => void): void {
  program
    .command('events')
    .alias('event')
    .description('print events as they happen, optionally filtered (e.g. topic=="/namespaces/create")')
    .argument('[filters...]')
    .action(async (filters: string[]) => {
      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await ctx.withClient(async (client) => {
          for await (const env of client.events.subscribe(filters, abort.signal)) {
            const event = eventToJSON({ typeUrl: env.event.typeUrl, value: Buffer.from(env.event.value) });
            if (ctx.options().format === 'json') {
              process.stdout.write(
                JSON.stringify({ timestamp: env.timestamp.toISOString(), namespace: env.namespace, topic: env.topic, type: env.event.typeUrl, event }) + '\n',
              );
            } else {
              process.stdout.write(`${env.timestamp.toISOString()} ${env.namespace} ${env.topic} ${JSON.stringify(event)}\n`);
            }
          }
        });
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      setExitCode(0);
    });
}
