/** Thrown when a generation is cancelled through its AbortSignal. */
export class GenerationAborted extends Error {
  constructor() {
    super("generation cancelled");
    this.name = "GenerationAborted";
  }
}
