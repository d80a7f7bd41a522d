/**
 * Typed errors. Each message says what was wrong and what to do about it; the CLI prints `message` alone
 * and exits 2 for the user-facing ones (everything here except InternalError).
 */
export class DiffuseError extends Error {
  /** Exit code the CLI uses for this error. */
  readonly exitCode: number = 2;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A checkpoint file or folder is malformed, truncated or inconsistent. */
export class CheckpointError extends DiffuseError {}

/** A well-formed checkpoint of a model family or variant that this version cannot run. */
export class UnsupportedModelError extends DiffuseError {}

/** A bad argument or input file from the user (size, strength, sampler name, image file...). */
export class InputError extends DiffuseError {}

/** A bug or an unexpected runtime failure: not the user's fault. */
export class InternalError extends DiffuseError {
  override readonly exitCode: number = 1;
}
