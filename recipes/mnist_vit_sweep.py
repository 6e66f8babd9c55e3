#!/usr/bin/env python
# The command line of keraszoo.recipes.mnist_vit_sweep, the same as `keraszoo study mnist_vit_sweep` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("mnist_vit_sweep"))
