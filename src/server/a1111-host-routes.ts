import { freemem, totalmem } from "node:os";
import type { FastifyInstance, FastifyReply } from "fastify";
import { adapterFolders } from "./a1111-extra-networks.js";
import { A1111Error } from "./a1111-mapping.js";
import { isLoopback } from "./config.js";
import type { ServerContext, StopRequest } from "./context.js";
import { PromptStyleList, PromptStyles } from "./prompt-styles.js";
import { a1111AxisOptions, XYZ_SCRIPT, XYZ_SCRIPT_ARGS } from "./a1111-xyz.js";

/**
 * The scripts A1111 requests may name here: the ControlNet extension's, as an always-on script of txt2img and img2img
 * (a1111-controlnet.ts), and of A1111's selectable scripts the X/Y/Z plot (a1111-xyz.ts); its prompt matrix and
 * prompts from file are not provided.
 */
const ALWAYSON_SCRIPTS = ["controlnet"] as const;
const SELECTABLE_SCRIPTS = [XYZ_SCRIPT] as const;

/**
 * A1111's routes about the server rather than one generation, which clients call at start-up: flags, memory,
 * scripts, prompt styles, the lists of what this server lacks (hypernetworks, face restorers), unloading and
 * reloading the checkpoint, and stopping the server (refused unless `serve --api-server-stop`). Shapes as
 * A1111's modules/api/models.py defines them.
 */
export function registerA1111HostRoutes(scope: FastifyInstance, ctx: ServerContext): void {
  const styles = new PromptStyles(ctx.config.dataDir);

  scope.get("/sdapi/v1/hypernetworks", async () => []);
  scope.get("/sdapi/v1/face-restorers", async () => []);

  scope.get("/sdapi/v1/prompt-styles", async () => styles.list());
  // Not A1111's (its page saves styles, its API cannot): replaces the saved styles, so clients and our page can.
  scope.post("/sdapi/v1/prompt-styles", async (request) => {
    const parsed = PromptStyleList.safeParse(request.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new A1111Error(
        422,
        `body.${issue.path.join(".")}: ${issue.message}; send a list of {name, prompt, negative_prompt}`,
      );
    }
    styles.save(
      parsed.data.map((s) => ({ name: s.name, prompt: s.prompt ?? "", negative_prompt: s.negative_prompt ?? "" })),
    );
    return null;
  });

  scope.get("/sdapi/v1/cmd-flags", async () => cmdFlags(ctx));

  scope.get("/sdapi/v1/memory", async () => {
    // As A1111: the process's resident size as "used", the machine's memory as "total", the difference as "free".
    const used = process.memoryUsage.rss();
    const total = totalmem();
    return {
      ram: { free: total - used, used, total },
      // The ONNX runtime runs on the CPU here: there is no CUDA memory to report, as A1111 says without CUDA.
      cuda: { error: "unavailable" },
      // Not A1111's: what the system has free, which its "free" is not.
      system: { free: freemem(), total },
    };
  });

  scope.get("/sdapi/v1/scripts", async () => ({
    txt2img: [...SELECTABLE_SCRIPTS, ...ALWAYSON_SCRIPTS],
    img2img: [...SELECTABLE_SCRIPTS, ...ALWAYSON_SCRIPTS],
  }));
  scope.get("/sdapi/v1/script-info", async () =>
    [false, true].flatMap((img2img) => [
      // The units go in `args` as objects (see docs/a1111-api.md), not as the extension's UI elements.
      ...ALWAYSON_SCRIPTS.map((name) => ({ name, is_alwayson: true, is_img2img: img2img, args: [] })),
      { name: XYZ_SCRIPT, is_alwayson: false, is_img2img: img2img, args: xyzScriptArgs(img2img) },
    ]),
  );

  // A VAE override is read when a model loads; there is no list of VAE files to scan again here.
  scope.post("/sdapi/v1/refresh-vae", async () => null);

  scope.post("/sdapi/v1/unload-checkpoint", async () => {
    await ctx.queue.unloadModel();
    return {};
  });
  scope.post("/sdapi/v1/reload-checkpoint", async () => {
    await ctx.queue.reloadModel();
    return {};
  });

  const stopRoute = (route: string, answer: (reply: FastifyReply) => unknown) =>
    scope.post(`/sdapi/v1/${route}`, async (_request, reply) => {
      if (!ctx.config.apiServerStop)
        throw new A1111Error(
          403,
          `${route} is off: a client may stop this server only when it was started with --api-server-stop (as A1111's flag)`,
        );
      return answer(reply);
    });
  // The stop is asked for once the answer has gone out: closing the server ends every connection.
  const stopAfter = (reply: FastifyReply, how: StopRequest) => reply.raw.once("finish", () => ctx.requestStop(how));
  // A1111 answers server-stop with the text "Stopping." and exits at once on server-kill; both stop gracefully here
  // (a running job goes back to the queue, as on SIGTERM).
  stopRoute("server-stop", (reply) => {
    stopAfter(reply, "stop");
    return reply.type("text/plain; charset=utf-8").send("Stopping.");
  });
  stopRoute("server-kill", (reply) => {
    stopAfter(reply, "kill");
    return null;
  });
  stopRoute("server-restart", () => {
    throw new A1111Error(
      501,
      "server-restart: this server cannot restart itself; stop it (server-stop) and let a supervisor (systemd, Docker's restart policy) start it again",
    );
  });
}

/** A1111's command-line flags (its `vars(cmd_opts)`), as far as this server has them; no secret is ever among them. */
function cmdFlags(ctx: ServerContext): Record<string, unknown> {
  const c = ctx.config;
  const folders = adapterFolders(ctx);
  return {
    api: true,
    nowebui: false,
    listen: !isLoopback(c.host),
    server_name: c.host,
    port: c.port,
    ckpt: c.modelPath,
    ckpt_dir: null,
    data_dir: c.dataDir,
    lora_dir: folders.loras,
    embeddings_dir: folders.embeddings,
    hypernetwork_dir: null,
    vae_dir: null,
    controlnet_dir: c.controlnetDirs?.[0] ?? null,
    api_log: c.log,
    api_auth: null,
    api_server_stop: c.apiServerStop ?? false,
    // Not A1111's flags: how this server differs.
    token_required: c.token !== undefined,
    queue: c.queue !== undefined,
  };
}

/** The X/Y/Z plot's script_args as A1111's ScriptArg items: the axis types list the page's axis options. */
function xyzScriptArgs(img2img: boolean) {
  const axisLabels = a1111AxisOptions(img2img).map((a) => a.label);
  return XYZ_SCRIPT_ARGS.map((label, i) => ({
    label,
    // The page's defaults: X on Seed, Y and Z on Nothing, the legend drawn, no margin, every other box unticked.
    value:
      i === 0
        ? axisLabels[1]
        : i < 9
          ? i % 3 === 0
            ? axisLabels[0]
            : i % 3 === 1
              ? ""
              : []
          : i === 9
            ? true
            : i === 16
              ? 0
              : false,
    minimum: i === 16 ? 0 : null,
    maximum: i === 16 ? 500 : null,
    step: i === 16 ? 2 : null,
    choices: i < 9 && i % 3 === 0 ? axisLabels : null,
  }));
}
