"""The tiny Stable Diffusion of the shapes world: SD1 architecture at toy sizes, written in plain torch.

Module trees and attribute names follow diffusers (UNet2DConditionModel, AutoencoderKL) and transformers
(CLIPTextModel) exactly, so that `state_dict()` keys are the names those libraries, and our loaders, expect.
"""
