/**
 * The {name: shape} map of a real SD1.5 single-file checkpoint (v1-5-pruned-emaonly), generated here from the
 * original LDM model definitions with v1-inference.yaml's parameters. It is written in the LDM module terms on
 * purpose (openaimodel's input_blocks running index, the VAE's bottom-up decoder), independently of the diffusers
 * side, so that the key map and detection are checked against a second derivation, not against themselves.
 */

type ShapeList = Map<string, number[]>;

const UNET = {
  inChannels: 4, outChannels: 4, modelChannels: 320, channelMult: [1, 2, 4, 4], numResBlocks: 2,
  attentionLevels: [0, 1, 2], contextDim: 768, transformerDepth: 1,
};
const VAE = { ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 4, embedDim: 4, inChannels: 3, outCh: 3 };
const CLIP = { vocab: 49408, hidden: 768, layers: 12, intermediate: 3072, positions: 77 };

function param(out: ShapeList, name: string, shape: number[]): void {
  out.set(name, shape);
}

function normLayer(out: ShapeList, p: string, c: number): void {
  param(out, `${p}.weight`, [c]);
  param(out, `${p}.bias`, [c]);
}

function convLayer(out: ShapeList, p: string, cout: number, cin: number, k: number): void {
  param(out, `${p}.weight`, [cout, cin, k, k]);
  param(out, `${p}.bias`, [cout]);
}

function linearLayer(out: ShapeList, p: string, cout: number, cin: number, bias = true): void {
  param(out, `${p}.weight`, [cout, cin]);
  if (bias) param(out, `${p}.bias`, [cout]);
}

/** openaimodel.ResBlock */
function resBlock(out: ShapeList, p: string, cin: number, cout: number, embDim: number): void {
  normLayer(out, `${p}.in_layers.0`, cin);
  convLayer(out, `${p}.in_layers.2`, cout, cin, 3);
  linearLayer(out, `${p}.emb_layers.1`, cout, embDim);
  normLayer(out, `${p}.out_layers.0`, cout);
  convLayer(out, `${p}.out_layers.3`, cout, cout, 3);
  if (cin !== cout) convLayer(out, `${p}.skip_connection`, cout, cin, 1);
}

/** attention.SpatialTransformer with conv projections (SD1) */
function spatialTransformer(out: ShapeList, p: string, c: number): void {
  normLayer(out, `${p}.norm`, c);
  convLayer(out, `${p}.proj_in`, c, c, 1);
  for (let d = 0; d < UNET.transformerDepth; d++) {
    const b = `${p}.transformer_blocks.${d}`;
    for (const [attn, ctx] of [["attn1", c], ["attn2", UNET.contextDim]] as const) {
      linearLayer(out, `${b}.${attn}.to_q`, c, c, false);
      linearLayer(out, `${b}.${attn}.to_k`, c, ctx, false);
      linearLayer(out, `${b}.${attn}.to_v`, c, ctx, false);
      linearLayer(out, `${b}.${attn}.to_out.0`, c, c);
    }
    linearLayer(out, `${b}.ff.net.0.proj`, c * 8, c);
    linearLayer(out, `${b}.ff.net.2`, c, c * 4);
    for (const n of ["norm1", "norm2", "norm3"]) normLayer(out, `${b}.${n}`, c);
  }
  convLayer(out, `${p}.proj_out`, c, c, 1);
}

function unet(out: ShapeList, pre: string, inChannels: number): void {
  const mc = UNET.modelChannels, emb = 4 * mc;
  linearLayer(out, `${pre}time_embed.0`, emb, mc);
  linearLayer(out, `${pre}time_embed.2`, emb, emb);
  convLayer(out, `${pre}input_blocks.0.0`, mc, inChannels, 3);
  const skips = [mc];
  let ch = mc, index = 1;
  UNET.channelMult.forEach((mult, level) => {
    for (let r = 0; r < UNET.numResBlocks; r++) {
      resBlock(out, `${pre}input_blocks.${index}.0`, ch, mult * mc, emb);
      ch = mult * mc;
      if (UNET.attentionLevels.includes(level)) spatialTransformer(out, `${pre}input_blocks.${index}.1`, ch);
      skips.push(ch);
      index++;
    }
    if (level !== UNET.channelMult.length - 1) {
      convLayer(out, `${pre}input_blocks.${index}.0.op`, ch, ch, 3);
      skips.push(ch);
      index++;
    }
  });
  resBlock(out, `${pre}middle_block.0`, ch, ch, emb);
  spatialTransformer(out, `${pre}middle_block.1`, ch);
  resBlock(out, `${pre}middle_block.2`, ch, ch, emb);
  index = 0;
  [...UNET.channelMult.entries()].reverse().forEach(([level, mult]) => {
    for (let i = 0; i <= UNET.numResBlocks; i++) {
      const p = `${pre}output_blocks.${index}`;
      resBlock(out, `${p}.0`, ch + skips.pop()!, mc * mult, emb);
      ch = mc * mult;
      let sub = 1;
      if (UNET.attentionLevels.includes(level)) spatialTransformer(out, `${p}.${sub++}`, ch);
      if (level !== 0 && i === UNET.numResBlocks) convLayer(out, `${p}.${sub}.conv`, ch, ch, 3);
      index++;
    }
  });
  normLayer(out, `${pre}out.0`, mc);
  convLayer(out, `${pre}out.2`, UNET.outChannels, mc, 3);
}

/** model.ResnetBlock of the autoencoder */
function vaeResnet(out: ShapeList, p: string, cin: number, cout: number): void {
  normLayer(out, `${p}.norm1`, cin);
  convLayer(out, `${p}.conv1`, cout, cin, 3);
  normLayer(out, `${p}.norm2`, cout);
  convLayer(out, `${p}.conv2`, cout, cout, 3);
  if (cin !== cout) convLayer(out, `${p}.nin_shortcut`, cout, cin, 1);
}

function vaeMid(out: ShapeList, p: string, c: number): void {
  vaeResnet(out, `${p}.block_1`, c, c);
  normLayer(out, `${p}.attn_1.norm`, c);
  for (const k of ["q", "k", "v", "proj_out"]) convLayer(out, `${p}.attn_1.${k}`, c, c, 1);
  vaeResnet(out, `${p}.block_2`, c, c);
}

function vae(out: ShapeList, pre: string): void {
  const { ch, chMult, numResBlocks, zChannels } = VAE;
  const last = chMult.length - 1;
  convLayer(out, `${pre}encoder.conv_in`, ch, VAE.inChannels, 3);
  let blockIn = ch;
  chMult.forEach((mult, i) => {
    for (let j = 0; j < numResBlocks; j++) {
      vaeResnet(out, `${pre}encoder.down.${i}.block.${j}`, blockIn, ch * mult);
      blockIn = ch * mult;
    }
    if (i !== last) convLayer(out, `${pre}encoder.down.${i}.downsample.conv`, blockIn, blockIn, 3);
  });
  vaeMid(out, `${pre}encoder.mid`, blockIn);
  normLayer(out, `${pre}encoder.norm_out`, blockIn);
  convLayer(out, `${pre}encoder.conv_out`, 2 * zChannels, blockIn, 3);
  blockIn = ch * chMult[last]!;
  convLayer(out, `${pre}decoder.conv_in`, blockIn, zChannels, 3);
  vaeMid(out, `${pre}decoder.mid`, blockIn);
  for (let i = last; i >= 0; i--) {
    for (let j = 0; j <= numResBlocks; j++) {
      vaeResnet(out, `${pre}decoder.up.${i}.block.${j}`, blockIn, ch * chMult[i]!);
      blockIn = ch * chMult[i]!;
    }
    if (i !== 0) convLayer(out, `${pre}decoder.up.${i}.upsample.conv`, blockIn, blockIn, 3);
  }
  normLayer(out, `${pre}decoder.norm_out`, ch);
  convLayer(out, `${pre}decoder.conv_out`, VAE.outCh, ch, 3);
  convLayer(out, `${pre}quant_conv`, 2 * VAE.embedDim, 2 * zChannels, 1);
  convLayer(out, `${pre}post_quant_conv`, zChannels, VAE.embedDim, 1);
}

function clipText(out: ShapeList, pre: string): void {
  const { hidden: h, intermediate } = CLIP;
  param(out, `${pre}text_model.embeddings.token_embedding.weight`, [CLIP.vocab, h]);
  param(out, `${pre}text_model.embeddings.position_embedding.weight`, [CLIP.positions, h]);
  param(out, `${pre}text_model.embeddings.position_ids`, [1, CLIP.positions]);
  for (let i = 0; i < CLIP.layers; i++) {
    const p = `${pre}text_model.encoder.layers.${i}`;
    for (const k of ["k_proj", "v_proj", "q_proj", "out_proj"]) linearLayer(out, `${p}.self_attn.${k}`, h, h);
    normLayer(out, `${p}.layer_norm1`, h);
    linearLayer(out, `${p}.mlp.fc1`, intermediate, h);
    linearLayer(out, `${p}.mlp.fc2`, h, intermediate);
    normLayer(out, `${p}.layer_norm2`, h);
  }
  normLayer(out, `${pre}text_model.final_layer_norm`, h);
}

/** SD1.5 published parameter counts (UNet 859.52M, VAE 83.65M, CLIP ViT-L/14 text 123.06M). */
export const SD15_PARAMETERS = { unet: 859_520_964, vae: 83_653_863, textEncoder: 123_060_480 };

/** The header of an SD1.5 single file as {name: shape}; `inChannels` 9 gives the inpainting variant. */
export function sd15LdmShapes(inChannels = UNET.inChannels): Map<string, number[]> {
  const out: ShapeList = new Map();
  // Training leftovers that real files carry beside the three networks.
  param(out, "alphas_cumprod", [1000]);
  param(out, "betas", [1000]);
  param(out, "model_ema.decay", []);
  param(out, "model_ema.num_updates", []);
  unet(out, "model.diffusion_model.", inChannels);
  vae(out, "first_stage_model.");
  clipText(out, "cond_stage_model.transformer.");
  return out;
}

export function countUnder(shapes: ReadonlyMap<string, readonly number[]>, prefix: string, skip?: RegExp): number {
  let n = 0;
  for (const [k, s] of shapes) if (k.startsWith(prefix) && !skip?.test(k)) n += s.reduce((a, b) => a * b, 1);
  return n;
}
