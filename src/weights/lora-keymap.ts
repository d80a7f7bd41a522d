/**
 * Name translation from the tensors of a LoRA (or LyCORIS) file to the modules of a model: which network, which
 * diffusers module, and what the tensor is to that module (a LoRA's down or up factor, its alpha, a LoHa factor...).
 * The formats that circulate differ in three places only, each a table below: the prefix that names the network
 * (kohya's `lora_unet_`, `lora_te1_`, diffusers' `unet.`, `text_encoder_2.`), how the module path is written (kohya
 * joins it with underscores, diffusers and PEFT keep the dots, some files use the original LDM block names), and the
 * suffix that names the tensor's role (`.lora_down.weight`, PEFT's `.lora_A.weight` with or without `.default`, ...).
 *
 * Underscore names are not split by guessing where the dots were: every module of the model is written the way each
 * format writes it, and a LoRA's module is looked up among those, as kohya's own tools do. Keys that match nothing
 * are returned, never dropped without a word.
 */

/** The networks a LoRA can change, named as the pipeline names them. */
export type LoraNetwork = "unet" | "text_encoder" | "text_encoder_2";

/** What a tensor of a LoRA file is to its module. */
export type LoraRole =
  | "down"
  | "up"
  | "mid"
  | "alpha"
  | "dora_scale"
  | "hada_w1_a"
  | "hada_w1_b"
  | "hada_w2_a"
  | "hada_w2_b"
  | "hada_t1"
  | "hada_t2"
  | "lokr_w1"
  | "lokr_w1_a"
  | "lokr_w1_b"
  | "lokr_w2"
  | "lokr_w2_a"
  | "lokr_w2_b"
  | "lokr_t2"
  | "diff"
  | "diff_b";

/** How a format writes module paths after its prefix. */
type Naming = "underscores" | "dots";

/** Network prefixes, longest first where one starts another. "any": the network that has the module (PEFT's bare adapter files). */
const PREFIXES: readonly (readonly [prefix: string, network: LoraNetwork | "any", naming: Naming])[] = [
  ["lora_unet_", "unet", "underscores"],
  ["lora_te1_", "text_encoder", "underscores"],
  ["lora_te2_", "text_encoder_2", "underscores"],
  ["lora_te_", "text_encoder", "underscores"],
  ["unet.", "unet", "dots"],
  ["text_encoder_2.", "text_encoder_2", "dots"],
  ["text_encoder.", "text_encoder", "dots"],
  ["base_model.model.", "any", "dots"],
];

/** Tensor roles by key suffix, longest first where one ends another. */
const SUFFIXES: readonly (readonly [suffix: string, role: LoraRole])[] = [
  // kohya / A1111 LoRA and LoCon (lora_mid: a Tucker-decomposed 3x3 convolution)
  [".lora_down.weight", "down"],
  [".lora_up.weight", "up"],
  [".lora_mid.weight", "mid"],
  // PEFT (diffusers' format since 0.22), with the adapter name PEFT writes when saving a named adapter
  [".lora_A.default.weight", "down"],
  [".lora_B.default.weight", "up"],
  [".lora_A.weight", "down"],
  [".lora_B.weight", "up"],
  // diffusers before PEFT: LoRACompatibleLinear, text encoders' lora_linear_layer, attention processors' to_q_lora...
  [".lora_linear_layer.down.weight", "down"],
  [".lora_linear_layer.up.weight", "up"],
  [".lora.down.weight", "down"],
  [".lora.up.weight", "up"],
  ["_lora.down.weight", "down"],
  ["_lora.up.weight", "up"],
  [".alpha", "alpha"],
  [".dora_scale", "dora_scale"],
  // LyCORIS LoHa, LoKr and full deltas
  [".hada_w1_a", "hada_w1_a"],
  [".hada_w1_b", "hada_w1_b"],
  [".hada_w2_a", "hada_w2_a"],
  [".hada_w2_b", "hada_w2_b"],
  [".hada_t1", "hada_t1"],
  [".hada_t2", "hada_t2"],
  [".lokr_w1_a", "lokr_w1_a"],
  [".lokr_w1_b", "lokr_w1_b"],
  [".lokr_w1", "lokr_w1"],
  [".lokr_w2_a", "lokr_w2_a"],
  [".lokr_w2_b", "lokr_w2_b"],
  [".lokr_w2", "lokr_w2"],
  [".lokr_t2", "lokr_t2"],
  [".diff_b", "diff_b"],
  [".diff", "diff"],
];

/**
 * Module paths as old diffusers attention processors wrote them, to the attention's own modules
 * (`attn1.processor.to_q_lora` + `.down.weight` is attn1.to_q's down factor).
 */
const MODULE_REWRITES: readonly (readonly [pattern: RegExp, replacement: string])[] = [
  [/\.processor\.to_(q|k|v)$/, ".to_$1"],
  [/\.processor\.to_out$/, ".to_out.0"],
];

/** The modules of a model a LoRA may change: each network's weights that are matrices or convolution filters. */
export interface LoraTargets {
  /** Module path (the weight's name without ".weight") -> the weight's shape, per network. */
  readonly modules: ReadonlyMap<LoraNetwork, ReadonlyMap<string, readonly number[]>>;
  /** UNet module path -> its original-layout (LDM) path, for LoRAs that name modules that way. */
  readonly ldmUnetPaths?: ReadonlyMap<string, string>;
}

/** The tensors of one module of a LoRA file, by role. */
export interface LoraModuleKeys {
  readonly network: LoraNetwork;
  /** The diffusers module path ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"). */
  readonly module: string;
  /** The module's name as the file writes it (its keys without the role suffix), for messages. */
  readonly name: string;
  readonly tensors: ReadonlyMap<LoraRole, string>;
}

export interface LoraKeyMap {
  readonly modules: readonly LoraModuleKeys[];
  /** Keys that name no module of the model (or no role a LoRA tensor has), in file order. */
  readonly unmatched: readonly string[];
}

/** Groups a LoRA file's keys by the model module they change. */
export function mapLoraKeys(keys: readonly string[], targets: LoraTargets): LoraKeyMap {
  const lookup = lookupTables(targets);
  const modules = new Map<
    string,
    { network: LoraNetwork; module: string; name: string; tensors: Map<LoraRole, string> }
  >();
  const unmatched: string[] = [];
  for (const key of keys) {
    const suffix = SUFFIXES.find(([s]) => key.endsWith(s));
    const prefix = PREFIXES.find(([p]) => key.startsWith(p));
    const target =
      suffix && prefix
        ? resolve(key.slice(prefix[0].length, key.length - suffix[0].length), prefix[1], prefix[2], lookup)
        : undefined;
    if (!suffix || !target) {
      unmatched.push(key);
      continue;
    }
    const id = `${target.network}\0${target.module}`;
    let entry = modules.get(id);
    if (!entry)
      modules.set(id, (entry = { ...target, name: key.slice(0, key.length - suffix[0].length), tensors: new Map() }));
    if (entry.tensors.has(suffix[1])) {
      // Two spellings of one tensor (a file with both PEFT and kohya keys): the second is not applied twice.
      unmatched.push(key);
      continue;
    }
    entry.tensors.set(suffix[1], key);
  }
  return { modules: [...modules.values()], unmatched };
}

type Lookup = Map<LoraNetwork, { dots: ReadonlyMap<string, readonly number[]>; underscores: Map<string, string> }>;

function lookupTables(targets: LoraTargets): Lookup {
  const out: Lookup = new Map();
  for (const [network, modules] of targets.modules) {
    const underscores = new Map<string, string>();
    for (const path of modules.keys()) {
      underscores.set(path.replaceAll(".", "_"), path);
      const ldm = network === "unet" ? targets.ldmUnetPaths?.get(path) : undefined;
      if (ldm !== undefined) underscores.set(ldm.replaceAll(".", "_"), path);
    }
    out.set(network, { dots: modules, underscores });
  }
  return out;
}

function resolve(
  written: string,
  network: LoraNetwork | "any",
  naming: Naming,
  lookup: Lookup,
): { network: LoraNetwork; module: string } | undefined {
  const candidates = network === "any" ? [...lookup.keys()] : [network];
  for (const n of candidates) {
    const tables = lookup.get(n);
    if (!tables) continue;
    if (naming === "underscores") {
      const module = tables.underscores.get(written);
      if (module !== undefined) return { network: n, module };
      continue;
    }
    const module = MODULE_REWRITES.reduce((m, [pattern, to]) => m.replace(pattern, to), written);
    if (tables.dots.has(module)) return { network: n, module };
  }
  return undefined;
}
