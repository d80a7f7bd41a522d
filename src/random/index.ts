export { TorchGenerator, type NoiseSource, type RandomDtype } from "./torch-generator.js";
export { MT19937 } from "./mt19937.js";
