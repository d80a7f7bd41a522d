import { PRECISIONS } from "../index.js";

/** `--precision`'s help, the same for generate, serve and worker. */
export const PRECISION_HELP = `arithmetic of the UNet and VAE decoder: ${PRECISIONS.join(" or ")}; int8 is faster on CPUs with VNNI, calibrated once on first use (4 prompts x 8 steps of the fp32 UNet at half size) unless the model ships its calibration (diffuse calibrate), a little less exact; the text encoders' weights are kept in int8 too`;
