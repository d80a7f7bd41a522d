import { PRECISIONS } from "../index.js";

/** `--precision`'s help, the same for generate, serve and worker. */
export const PRECISION_HELP = `arithmetic of the UNet and VAE decoder: ${PRECISIONS.join(" or ")}; int8 is faster on CPUs with VNNI, calibrated on first use (about a minute for SD1.5 on 2 cores), a little less exact`;
