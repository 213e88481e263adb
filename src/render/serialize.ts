import { stringify } from "yaml";
import type { TraefikDocument } from "./types.js";

export type ConfigFormat = "json" | "yaml";

/**
 * JSON as served to Traefik's HTTP provider: compact (at 100k deployments indentation alone adds ~40% bytes
 * and serialize time, and nobody reads this form by eye: `?format=yaml` is for humans). The config must
 * already be canonical; render() returns it so.
 */
export function toJson(config: TraefikDocument): string {
  return `${JSON.stringify(config)}\n`;
}

/** Indented JSON for the CLI and file export. */
export function toPrettyJson(config: TraefikDocument): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** YAML for the file provider and humans; never emits `&anchors` for objects that happen to be reused. */
export function toYaml(config: TraefikDocument): string {
  return stringify(config, { aliasDuplicateObjects: false, lineWidth: 0 });
}

export function serialize(config: TraefikDocument, format: ConfigFormat): string {
  return format === "yaml" ? toYaml(config) : toPrettyJson(config);
}
