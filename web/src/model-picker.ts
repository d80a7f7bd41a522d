/**
 * The model picker: a select listing the checkpoints the server can serve (GET /api/v1/models?wait=false, which
 * answers while a model loads), the served one chosen. Choosing another switches the server (PUT
 * /api/v1/models/served): the new model loads in the background while jobs already queued finish on the old one,
 * so the picker shows the load until it is done, then tells the page (its defaults change with the model); a model
 * that cannot load is said so, and the server goes on with the old one.
 */
import type { ApiClient, AvailableModel, ModelList } from "./api-client.js";
import { h } from "./dom.js";

/** How often the picker asks while a model loads. */
const POLL_MS = 700;

export class ModelPicker {
  private polling: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly select: HTMLSelectElement,
    private readonly api: ApiClient,
    private readonly events: {
      /** The served model has loaded (after a switch): its defaults are the page's now. */
      loaded: () => void;
      note: (message: string, kind?: "info" | "error") => void;
    },
  ) {
    select.addEventListener("change", () => void this.choose(select.value));
  }

  /** Lists the models; follows a load already under way (another tab's switch). */
  async load(): Promise<void> {
    this.show(await this.api.availableModels());
  }

  private async choose(name: string): Promise<void> {
    try {
      this.show(await this.api.serveModel(name));
      this.events.note(`Loading ${name}; jobs already queued finish on the model before`);
    } catch (e) {
      this.events.note(`Could not switch to ${name}: ${(e as Error).message}`, "error");
      await this.load().catch(() => undefined);
    }
  }

  private show(list: ModelList): void {
    const served = list.available.find((m) => m.served);
    this.select.replaceChildren(
      ...list.available.map((m) => h("option", { value: m.name, title: describe(m), selected: m.served }, label(m))),
    );
    this.select.disabled = list.available.length < 2;
    this.select.dataset.state = served?.state ?? "unloaded";
    clearTimeout(this.polling);
    this.polling = undefined;
    if (served?.state === "loading" || served?.state === "unloaded") {
      this.polling = setTimeout(() => void this.follow(served.name), POLL_MS);
    }
  }

  /** Polls until the model being switched to has loaded (or failed, and the old one serves again). */
  private async follow(name: string): Promise<void> {
    let list: ModelList;
    try {
      list = await this.api.availableModels();
    } catch {
      this.polling = setTimeout(() => void this.follow(name), POLL_MS * 3);
      return;
    }
    this.show(list);
    const wanted = list.available.find((m) => m.name === name);
    if (wanted?.state === "failed")
      this.events.note(
        `${name} could not be loaded: ${wanted.error ?? "no reason given"}; the server goes on with ${list.served}`,
        "error",
      );
    else if (wanted?.served && wanted.state === "loaded") this.events.loaded();
  }
}

function label(m: AvailableModel): string {
  return m.state === "loading" ? `${m.name} (loading…)` : m.state === "failed" ? `${m.name} (failed to load)` : m.name;
}

function describe(m: AvailableModel): string {
  const parts = [m.title ?? m.name, m.family, `from ${m.source}`];
  if (m.error) parts.push(`last load failed: ${m.error}`);
  return parts.join(" · ");
}
