"""medcolor: DICOM-aware colourisation of grayscale CT, MRI and X-ray.

The library imports without typer or rich; ``medcolor.cli`` is the command-line front end.
Data flows one way: ``io`` -> ``windowing`` -> ``colorizers`` -> ``color`` -> ``writers``/``metrics``
-> ``report``; ``pipeline`` wires them.
"""
__version__ = "0.1.0"

from medcolor.errors import MedcolorError  # noqa: E402

__all__ = ["__version__", "MedcolorError"]
