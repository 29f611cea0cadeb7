/**
 * The image config of a build result, as every exporter ships it: the planned config (from
 * the frontend) finished with what only the solve knows (layers, which steps added one, when
 * each was made) and the build's extra labels.
 */
import type { ImageConfig } from '../oci/types.js';

/** For each layer-producing step of the target's chain (base first): did it add a layer, and when was it made? */
export interface SolvedStep {
  added: boolean;
  createdAt?: string;
}

export interface FinalizeOptions {
  /** History entries the base image brought (they are kept as they are). */
  baseHistoryLength: number;
  /** The diff ids of the image's layers, base first. */
  diffIds: string[];
  chain: SolvedStep[];
  /** With SOURCE_DATE_EPOCH: that time, which every step gets. */
  epochTime?: string;
  /** Labels added on top of the Dockerfile's (`--label`). */
  labels?: Record<string, string>;
}

/**
 * Sets rootfs.diff_ids, marks the history entries of steps that changed nothing as empty
 * layers (so history and layers line up as docker expects), and dates each step by when
 * its result was made, as BuildKit does: a fully cached rebuild gives the same image id.
 * With SOURCE_DATE_EPOCH every time is that epoch. The planned config is not changed.
 */
export function finalizeConfig(planned: ImageConfig, options: FinalizeOptions): ImageConfig {
  const { baseHistoryLength, diffIds, chain, epochTime } = options;
  const config = structuredClone(planned);
  config.rootfs = { type: 'layers', diff_ids: diffIds };
  const history = config.history ?? [];
  // The entries of this build's layer-producing steps are the last chain.length non-empty ones.
  const layerEntries = history.filter((h) => !h.empty_layer);
  const ours = layerEntries.slice(layerEntries.length - chain.length);
  ours.forEach((h, k) => {
    if (!chain[k].added) h.empty_layer = true;
    h.created = epochTime ?? chain[k].createdAt ?? h.created;
  });
  if (epochTime === undefined) {
    // this build's entries without a layer (ENV, LABEL, ...) take the time of the entry before
    // them (the base image's last, or the step before), so nothing depends on the clock
    let last = baseHistoryLength > 0 ? history[baseHistoryLength - 1].created : undefined;
    for (let i = baseHistoryLength; i < history.length; i++) {
      if (ours.includes(history[i])) last = history[i].created;
      else history[i].created = last ?? '1970-01-01T00:00:00Z';
    }
    const times = history.map((h) => h.created).filter((t): t is string => t !== undefined).sort();
    config.created = times.length ? times[times.length - 1] : '1970-01-01T00:00:00Z';
  }
  if (options.labels && Object.keys(options.labels).length > 0) config.config = { ...config.config, Labels: { ...(config.config?.Labels ?? {}), ...options.labels } };
  return config;
}
