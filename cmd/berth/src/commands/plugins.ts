import { Command } from 'commander';
import type { PluginInfo } from '@berth/core';
import type { CommandContext } from '../cli';
import { formatTable } from '../output';

function statusWord(p: PluginInfo): string {
  return p.status === 'skipped' ? 'skip' : p.status;
}

export function registerPluginCommands(program: Command, ctx: CommandContext): void {
  const plugins = program.command('plugins').alias('plugin').description('inspect the daemon\'s plugins');
  plugins
    .command('ls')
    .alias('list')
    .description('list plugins, optionally filtered (e.g. type==io.berth.grpc.v1)')
    .argument('[filters...]')
    .option('-d, --detailed', 'show requirements, exports, capabilities and errors')
    .action(async (filters: string[], opts: { detailed?: boolean }) => {
      const list = await ctx.withClient((c) => c.introspection.plugins(filters));
      if (ctx.options().format === 'json') {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      if (!opts.detailed) {
        const rows = list.map((p) => [p.type, p.id, p.platforms.join(',') || '-', statusWord(p)]);
        process.stdout.write(formatTable(['TYPE', 'ID', 'PLATFORMS', 'STATUS'], rows));
        return;
      }
      const out: string[] = [];
      for (const p of list) {
        out.push(`Type:          ${p.type}`, `ID:            ${p.id}`, `Status:        ${statusWord(p)}`);
        if (p.requires.length) out.push('Requires:', ...p.requires.map((r) => `               ${r}`));
        if (p.platforms.length) out.push('Platforms:', ...p.platforms.map((r) => `               ${r}`));
        const exports = Object.entries(p.exports);
        if (exports.length) out.push('Exports:', ...exports.map(([k, v]) => `               ${k}  ${v}`));
        if (p.capabilities.length) out.push('Capabilities:', ...p.capabilities.map((c) => `               ${c}`));
        if (p.error) out.push(`Error:         ${p.error}`);
        out.push('');
      }
      process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
    });
}
