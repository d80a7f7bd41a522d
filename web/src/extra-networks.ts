/**
 * The LoRAs and textual-inversion embeddings the server can apply, as buttons that write them into the prompt the
 * way A1111's extra-networks cards do: a LoRA as `<lora:NAME:1>`, an embedding as its trigger word (its file name).
 * The lists come from A1111's routes (/sdapi/v1/loras, /sdapi/v1/embeddings), which also serve A1111 clients.
 */
import type { ApiClient } from "./api-client.js";
import { h } from "./dom.js";

export class ExtraNetworks {
  constructor(
    private readonly parts: { root: HTMLElement; loras: HTMLElement; embeddings: HTMLElement; empty: HTMLElement },
    private readonly api: ApiClient,
    /** Where a chosen name goes: the prompt field last focused (prompt or negative prompt). */
    private readonly target: () => HTMLTextAreaElement,
  ) {}

  async load(): Promise<void> {
    const [loras, embeddings] = await Promise.all([this.api.loras(), this.api.embeddings()]);
    const names = Object.keys(embeddings.loaded);
    this.fill(
      this.parts.loras,
      loras.map((l) => ({
        label: l.alias,
        title: `LoRA ${l.name}: adds <lora:${l.name}:1>`,
        text: `<lora:${l.name}:1>`,
      })),
    );
    this.fill(
      this.parts.embeddings,
      names.map((n) => ({
        label: n,
        title: `Embedding ${n} (${embeddings.loaded[n]!.vectors} vectors): adds its trigger word`,
        text: n,
      })),
    );
    this.parts.empty.hidden = loras.length + names.length > 0;
    this.parts.root.dataset.count = String(loras.length + names.length);
  }

  private fill(list: HTMLElement, items: { label: string; title: string; text: string }[]): void {
    list.replaceChildren(
      ...items.map((item) => {
        const button = h("button", { type: "button", className: "chip", title: item.title }, item.label);
        button.addEventListener("click", () => insert(this.target(), item.text));
        return button;
      }),
    );
    list.hidden = items.length === 0;
  }
}

/** Puts `text` at the caret (or over the selection), with a space on either side where a word would touch it. */
function insert(field: HTMLTextAreaElement, text: string): void {
  const start = field.selectionStart ?? field.value.length;
  const end = field.selectionEnd ?? start;
  const before = field.value.slice(0, start);
  const after = field.value.slice(end);
  const lead = before === "" || /\s$/.test(before) ? "" : " ";
  const trail = after === "" || /^\s/.test(after) ? "" : " ";
  field.value = `${before}${lead}${text}${trail}${after}`;
  const caret = before.length + lead.length + text.length;
  field.setSelectionRange(caret, caret);
  field.focus();
  // The form listens for input to remember the prompt.
  field.dispatchEvent(new Event("input", { bubbles: true }));
}
