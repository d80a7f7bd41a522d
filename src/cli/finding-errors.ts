import { DiffuseError } from "../index.js";

/**
 * The exit status of the commands that look for something in an image (verify: content credentials, detect:
 * watermarks), one convention for both so a script can branch on them alike: 0 found and sound, 2 none found,
 * 3 found but broken. The report is printed first in every case; the error adds one line on stderr.
 */
/** Nothing of the kind is in the image: exit 2. */
export class NothingFoundError extends DiffuseError {}

/** Something is there but does not hold (credentials that fail validation, a mark whose payload cannot be read): 3. */
export class FoundButBrokenError extends DiffuseError {
  override readonly exitCode: number = 3;
}
