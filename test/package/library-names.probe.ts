/**
 * Compiled by library-names.test.ts (and by the project's own tsc): lists, as a type, every snake_case key reachable
 * from the library's request types. Assigning "none" compiles only while that list is empty; the compiler's error
 * names the keys found, e.g. `Type '"none"' is not assignable to type '"cfg_scale" | "controlnet.guidance_start"'`.
 */
import type {
  ControlNetUnit,
  GenerateParams,
  HiresParams,
  LoadOptions,
  LoraRequest,
  WorkerGenerateParams,
} from "../../src/index.js";

type Leaf = string | number | bigint | boolean | null | undefined | symbol | Uint8Array | AbortSignal;
type Fn = (...args: never[]) => unknown;
type Snake<K extends string> = K extends `${string}_${string}` ? K : never;
/** Every path "a.b_c" whose last key has an underscore, four levels deep (the request types nest two or three). */
type DeepSnake<T, P extends string = "", D extends unknown[] = []> = D["length"] extends 4
  ? never
  : T extends Leaf | Fn
    ? never
    : T extends readonly (infer E)[]
      ? DeepSnake<E, P, D>
      : T extends object
        ? {
            [K in keyof T & string]-?: [Snake<K>] extends [never]
              ? DeepSnake<NonNullable<T[K]>, `${P}${K}.`, [...D, 0]>
              : `${P}${K}`;
          }[keyof T & string]
        : never;
type None<T> = [DeepSnake<T>] extends [never] ? "none" : DeepSnake<T>;

// The probe can fail: a nested snake_case key is found (else every check below would pass vacuously).
export const sane: DeepSnake<{ units?: { ok: 1; guidance_start: 1 }[] }> = "units.guidance_start";
export const sound: None<{ units?: { ok: 1; guidanceStart: 1 }[] }> = "none";

export const generateParams: None<GenerateParams> = "none";
export const controlNetUnit: None<ControlNetUnit> = "none";
export const hiresParams: None<HiresParams> = "none";
export const loadOptions: None<LoadOptions> = "none";
export const loraRequest: None<LoraRequest> = "none";
export const workerGenerateParams: None<WorkerGenerateParams> = "none";
