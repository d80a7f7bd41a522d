/**
 * The access token for a server started with `--token`: asked for once in a dialog, then kept in localStorage so
 * a reload does not ask again.
 */
import type { TokenSource } from "./api-client.js";

const KEY = "diffuse.token";

export class TokenDialog implements TokenSource {
  /** Requests fired together (page load) all hit 401 together; they should see one dialog, not several. */
  private pending: Promise<string | null> | null = null;

  constructor(private readonly dialog: HTMLDialogElement) {
    this.adoptFromAddress();
  }

  get(): string | null {
    return localStorage.getItem(KEY);
  }

  ask(reason: string): Promise<string | null> {
    this.pending ??= this.show(reason).finally(() => (this.pending = null));
    return this.pending;
  }

  /**
   * A link like `http://host:7860/?access_token=...` (how a token-protected page is first opened) hands its
   * token over here; it is then taken out of the address bar so it does not linger in history or screenshots.
   */
  private adoptFromAddress(): void {
    const url = new URL(window.location.href);
    const token = url.searchParams.get("access_token");
    if (!token) return;
    localStorage.setItem(KEY, token);
    url.searchParams.delete("access_token");
    window.history.replaceState(window.history.state, "", url.toString());
  }

  private show(reason: string): Promise<string | null> {
    const form = this.dialog.querySelector("form")!;
    const input = this.dialog.querySelector<HTMLInputElement>("input[name=token]")!;
    this.dialog.querySelector(".token-reason")!.textContent = reason;
    input.value = "";
    this.dialog.showModal();
    return new Promise((resolve) => {
      const finish = (token: string | null) => {
        form.removeEventListener("submit", onSubmit);
        this.dialog.removeEventListener("cancel", onCancel);
        this.dialog.close();
        if (token) localStorage.setItem(KEY, token);
        else localStorage.removeItem(KEY);
        resolve(token);
      };
      const onSubmit = (e: SubmitEvent) => {
        e.preventDefault();
        const wantsCancel = (e.submitter as HTMLButtonElement | null)?.value === "cancel";
        finish(wantsCancel ? null : input.value.trim() || null);
      };
      const onCancel = (e: Event) => {
        e.preventDefault();
        finish(null);
      };
      form.addEventListener("submit", onSubmit);
      this.dialog.addEventListener("cancel", onCancel);
    });
  }
}
