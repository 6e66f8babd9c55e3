#!/usr/bin/env python
# The command line of keraszoo.recipes.mnist_dinov2_study, the same as `keraszoo study mnist_dinov2_study` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("mnist_dinov2_study"))
