/** Short notes that confirm an action or explain an error, then get out of the way. */
import { h } from "./dom.js";

export function toast(container: HTMLElement, message: string, kind: "info" | "error" = "info"): void {
  const note = h("div", { className: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  container.append(note);
  // Errors stay longer: they usually need reading.
  setTimeout(
    () => {
      note.classList.add("leaving");
      setTimeout(() => note.remove(), 300);
    },
    kind === "error" ? 7000 : 3000,
  );
}
