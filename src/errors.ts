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

/**
 * A pickle (.pt, .pth, .ckpt) asks for something a tensor dictionary never needs: a global outside the allowed
 * few (torch's tensor rebuild functions, storages, OrderedDict), or an opcode that builds arbitrary objects. Such a
 * file could run code if a careless loader unpickled it; here nothing is executed and the file is refused.
 * `offending` names the global ("os.system") or the opcode ("INST os.system", "EXT1").
 */
export class UnsafePickleError extends CheckpointError {
  constructor(
    message: string,
    readonly offending: string,
  ) {
    super(message);
  }
}

/** A well-formed checkpoint of a model family or variant that this version cannot run. */
export class UnsupportedModelError extends DiffuseError {}

/** A bad argument or input file from the user (size, strength, sampler name, image file...). */
export class InputError extends DiffuseError {}

/** A bug or an unexpected runtime failure: not the user's fault. */
export class InternalError extends DiffuseError {
  override readonly exitCode: number = 1;
}

/**
 * Getting a model from the Hugging Face Hub failed: the Hub cannot be reached or HF_HUB_OFFLINE forbids it, it
 * refused (401/403) or has no such repository, revision or file (404), the disk is full, or the bytes received do
 * not match the Hub's checksum. The message names what to do (set HF_TOKEN, accept the conditions, free space...).
 */
export class HubError extends DiffuseError {}

/**
 * A model's licence has not been accepted: shown and accepted at a terminal, or accepted with --accept-license
 * (`acceptLicense` in the library).
 */
export class LicenseNotAcceptedError extends DiffuseError {}
