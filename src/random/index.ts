export { TorchGenerator, type NoiseSource, type RandomDtype } from "./torch-generator.js";
export { MT19937 } from "./mt19937.js";
export { MAX_SEED, parseSeed, RANDOM_SEED, randomSeed, seedInteger, seedToJson, type SeedInput } from "./seed.js";
