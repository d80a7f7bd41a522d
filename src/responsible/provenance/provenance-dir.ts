import { homedir } from "node:os";
import { join } from "node:path";

/**
 * `$XDG_CONFIG_HOME/diffuse/c2pa`, or `~/.config/diffuse/c2pa`: where the local signing identity lives
 * (local-identity.ts). Kept apart from that file, which loads the X.509 library, so a command can name the folder
 * in its settings without loading it.
 */
export function defaultProvenanceDir(env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME?.startsWith("/") ? env.XDG_CONFIG_HOME : join(homedir(), ".config");
  return join(config, "diffuse", "c2pa");
}
