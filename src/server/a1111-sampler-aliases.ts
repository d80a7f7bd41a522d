/**
 * The short names AUTOMATIC1111 accepts for its samplers besides their labels ("k_euler_a" for "Euler a"), from the
 * alias lists of its k-diffusion, timestep and LCM sampler tables. Old scripts and clients (and A1111's own
 * "prompts from file" and X/Y/Z scripts) still send them. A1111 matches names and aliases without regard to case
 * (its lower-cased samplers map); so do we. The labels of samplers this server lacks stay listed, so such an alias
 * is answered as that sampler ("Sampler not found: ... (DPM fast)") rather than as a name nobody knows.
 */
const ALIASES: Readonly<Record<string, readonly string[]>> = {
  "Euler a": ["k_euler_a", "k_euler_ancestral"],
  Euler: ["k_euler"],
  LMS: ["k_lms"],
  Heun: ["k_heun"],
  DPM2: ["k_dpm_2"],
  "DPM2 a": ["k_dpm_2_a"],
  "DPM++ 2S a": ["k_dpmpp_2s_a"],
  "DPM++ 2M": ["k_dpmpp_2m"],
  "DPM++ SDE": ["k_dpmpp_sde"],
  "DPM++ 2M SDE": ["k_dpmpp_2m_sde"],
  "DPM++ 2M SDE Heun": ["k_dpmpp_2m_sde_heun"],
  "DPM++ 3M SDE": ["k_dpmpp_3m_sde"],
  "DPM fast": ["k_dpm_fast"],
  "DPM adaptive": ["k_dpm_ad"],
  Restart: ["restart"],
  // Before A1111 1.9 split the schedule type off, each Karras pair was a sampler of its own with an alias.
  "LMS Karras": ["k_lms_ka"],
  "DPM2 Karras": ["k_dpm_2_ka"],
  "DPM2 a Karras": ["k_dpm_2_a_ka"],
  "DPM++ 2S a Karras": ["k_dpmpp_2s_a_ka"],
  "DPM++ 2M Karras": ["k_dpmpp_2m_ka"],
  "DPM++ SDE Karras": ["k_dpmpp_sde_ka"],
  "DPM++ 2M SDE Karras": ["k_dpmpp_2m_sde_ka"],
  "DPM++ 3M SDE Karras": ["k_dpmpp_3m_sde_ka"],
  "DPM++ 3M SDE Exponential": ["k_dpmpp_3m_sde_exp"],
  DDIM: ["ddim"],
  PLMS: ["plms"],
  UniPC: ["unipc"],
  LCM: ["k_lcm"],
};

const BY_ALIAS: ReadonlyMap<string, string> = new Map(
  Object.entries(ALIASES).flatMap(([label, aliases]) => aliases.map((a) => [a.toLowerCase(), label] as const)),
);

/** A1111's aliases of a sampler label (none for a label it has none for). */
export function a1111SamplerAliases(label: string): readonly string[] {
  return ALIASES[label] ?? [];
}

/** The label an A1111 alias stands for ("K_Euler_A" -> "Euler a"); any other name is returned as it is. */
export function unaliasA1111Sampler(name: string): string {
  return BY_ALIAS.get(name.trim().toLowerCase()) ?? name;
}
