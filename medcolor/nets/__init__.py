"""Network definitions and checkpoint reading of the learned backends, shared by inference
(``medcolor.colorizers``, ``medcolor.pipeline``) and training (``medcolor.train``), which imports them;
nothing here imports either. Pure torch: no torchvision, nothing downloaded.

- :mod:`medcolor.nets.lookup`: piecewise-linear L lookups (``curve_lookup``, ``apply_l_lut``);
- :mod:`medcolor.nets.unet`: ``LumaPriorUNet``, the ``cnn`` backend's own network (``luma-prior-unet``);
- the seed papers' ``cnn`` networks (issue 17): :mod:`medcolor.nets.fusion` (``fusion``),
  :mod:`medcolor.nets.inception_resnet_unet` (``inception-resnet-unet``), :mod:`medcolor.nets.tutorial`
  (``tutorial``), built from :mod:`medcolor.nets.common`;
- :mod:`medcolor.nets.backbones`: VGG16/VGG19, ResNet50 and Inception-ResNet-v2 in the layouts of the
  public pretrained state dicts, the one state-dict reader and key-by-key check, VGG feature taps with a
  seeded fallback (the cyclegan perceptual loss, the exemplar's gram mode, the fusion encoder);
- :mod:`medcolor.nets.cyclegan`: ``ResnetGenerator`` and ``ColorGenerator``, the ``cyclegan`` backend's
  ``G_color`` (``cyclegan-resnet``);
- :mod:`medcolor.nets.checkpoint`: verified loading of checkpoints, the shipped-model manifest
  (``medcolor/models/manifest.json``; the folder holds the shipped ``.pt`` files as data).
"""
from medcolor.nets.checkpoint import (
    ARCHITECTURES,
    build_model,
    load_checkpoint,
    load_model_options,
    resolve_model,
    shipped_models,
    state_sha256,
)

__all__ = ["ARCHITECTURES", "build_model", "load_checkpoint", "load_model_options", "resolve_model",
           "shipped_models", "state_sha256"]
