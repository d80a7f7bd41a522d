/**
 * Saved prompt styles (A1111's styles.csv, kept in the server's data folder): one chip per style that merges it
 * into the prompt and negative prompt as A1111's "apply styles" does, and a button that saves the current prompts
 * as a style. The list comes from A1111's GET /sdapi/v1/prompt-styles, which also serves A1111 clients.
 */
import { mergeStyle } from "../../src/server/style-merge.js";
import type { ApiClient, PromptStyle } from "./api-client.js";
import { h } from "./dom.js";

export class PromptStylePicker {
  private styles: PromptStyle[] = [];

  constructor(
    private readonly parts: { list: HTMLElement; save: HTMLButtonElement },
    private readonly api: ApiClient,
    private readonly fields: { prompt: HTMLTextAreaElement; negative: HTMLTextAreaElement },
    private readonly note: (message: string, kind: "info" | "error") => void,
  ) {
    parts.save.addEventListener("click", () => void this.saveCurrent().catch((e: Error) => note(e.message, "error")));
  }

  async load(): Promise<void> {
    this.styles = await this.api.promptStyles();
    this.parts.list.replaceChildren(
      ...this.styles.map((style) => {
        const button = h(
          "button",
          { type: "button", className: "chip", title: `Style ${style.name}: ${style.prompt}` },
          style.name,
        );
        button.addEventListener("click", () => this.apply(style));
        return button;
      }),
    );
    this.parts.list.hidden = this.styles.length === 0;
  }

  private apply(style: PromptStyle): void {
    for (const [field, text] of [
      [this.fields.prompt, style.prompt ?? ""],
      [this.fields.negative, style.negative_prompt ?? ""],
    ] as const) {
      field.value = mergeStyle(text, field.value);
      // The form listens for input to remember the prompt.
      field.dispatchEvent(new Event("input", { bubbles: true }));
    }
  }

  /** Saves the current prompts as a style (one of the same name is replaced). */
  private async saveCurrent(): Promise<void> {
    const name = window.prompt("Save the prompt and negative prompt as the style named:")?.trim();
    if (!name) return;
    const style = { name, prompt: this.fields.prompt.value, negative_prompt: this.fields.negative.value };
    await this.api.savePromptStyles([...this.styles.filter((s) => s.name !== name), style]);
    await this.load();
    this.note(`saved style "${name}"`, "info");
  }
}
