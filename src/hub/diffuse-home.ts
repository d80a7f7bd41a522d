import { homedir } from "node:os";
import { join } from "node:path";

// Its own module, free of the Hub client, so the pipeline can find its folders without loading that client.
/** DIFFUSE_HOME, else the platform's folder for application data. */
export function diffuseHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DIFFUSE_HOME) return env.DIFFUSE_HOME;
  if (process.platform === "win32") return join(env.LOCALAPPDATA || join(homedir(), "AppData", "Local"), "diffuse");
  if (process.platform === "darwin") return join(homedir(), "Library", "Application Support", "diffuse");
  const data = env.XDG_DATA_HOME?.startsWith("/") ? env.XDG_DATA_HOME : join(homedir(), ".local", "share");
  return join(data, "diffuse");
}
