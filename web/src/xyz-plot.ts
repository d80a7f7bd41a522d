import type { ApiClient } from "./api-client.js";
import { byId } from "./dom.js";

/**
 * The page's "Script: X/Y/Z plot" section: an axis type and its values for X, Y and Z, sent as A1111's X/Y/Z plot
 * script (script_name "x/y/z plot", its positional script_args) with the form's text-to-image request; the grid it
 * answers is shown in the section. Values are text, as A1111's page takes them with "Use text inputs".
 */
export class XyzPlotSection {
  private readonly letters = ["x", "y", "z"] as const;

  constructor(
    private readonly api: ApiClient,
    /** The form's text-to-image request in A1111's fields, or undefined when it cannot be sent (the page says why). */
    private readonly request: () => Record<string, unknown> | undefined,
    private readonly fail: (message: string) => void,
  ) {
    byId("xyz-run").addEventListener("click", () => void this.run());
  }

  /** Fills the axis type lists from the server (their order is the index A1111's script_args use). */
  async load(): Promise<void> {
    const types = await this.api.xyzAxisTypes();
    for (const letter of this.letters) {
      const select = byId<HTMLSelectElement>(`xyz-${letter}-type`);
      select.replaceChildren(
        ...types.map((label, i) => {
          const option = document.createElement("option");
          option.value = String(i);
          option.textContent = label;
          return option;
        }),
      );
      // As A1111's page: X starts on Seed, Y and Z on Nothing.
      select.value = letter === "x" && types.length > 1 ? "1" : "0";
    }
  }

  private scriptArgs(): unknown[] {
    const axis = (letter: string) => [
      Number(byId<HTMLSelectElement>(`xyz-${letter}-type`).value || "0"),
      byId<HTMLInputElement>(`xyz-${letter}-values`).value,
      [],
    ];
    const legend = byId<HTMLInputElement>("xyz-legend").checked;
    // draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x/y/z, margin_size, csv_mode.
    return [...axis("x"), ...axis("y"), ...axis("z"), legend, false, false, false, false, false, false, 0, true];
  }

  private async run(): Promise<void> {
    const request = this.request();
    if (!request) return;
    const button = byId<HTMLButtonElement>("xyz-run");
    const image = byId<HTMLImageElement>("xyz-grid");
    button.disabled = true;
    try {
      const answer = await this.api.xyzPlot({
        ...request,
        script_name: "x/y/z plot",
        script_args: this.scriptArgs(),
      });
      image.src = `data:image/png;base64,${answer.images[0] ?? ""}`;
      image.hidden = false;
    } catch (e) {
      this.fail(e instanceof Error ? e.message : String(e));
    } finally {
      button.disabled = false;
    }
  }
}
