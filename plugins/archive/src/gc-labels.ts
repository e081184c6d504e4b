import { GcLabels, type Descriptor, type Labels } from '@berth/core';

/** What a manifest keeps alive: `gc.ref.content.config` and `gc.ref.content.l.<i>`, as a pull sets them. */
export function manifestChildLabels(config: Descriptor, layers: ReadonlyArray<Descriptor>): Labels {
  const labels: Labels = { [`${GcLabels.refContent}.config`]: config.digest };
  layers.forEach((layer, i) => (labels[`${GcLabels.refContent}.l.${i}`] = layer.digest));
  return labels;
}

/** What an index keeps alive: `gc.ref.content.m.<i>` for each child it holds. */
export function indexChildLabels(children: ReadonlyArray<Descriptor>): Labels {
  const labels: Labels = {};
  children.forEach((child, i) => (labels[`${GcLabels.refContent}.m.${i}`] = child.digest));
  return labels;
}
