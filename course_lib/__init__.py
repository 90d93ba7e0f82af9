"""Transformers, from scratch: the helpers that the course notebooks build and then reuse.

Start every notebook with ``device = course_lib.setup()``: it seeds every random generator,
picks the device and switches off the GPU shortcuts that would make results differ from the CPU.
"""

from course_lib.runtime import get_device, seed, setup

__version__ = "0.1.0"
__all__ = ["__version__", "get_device", "seed", "setup"]
