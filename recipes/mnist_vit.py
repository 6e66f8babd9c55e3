#!/usr/bin/env python
# The command line of keraszoo.recipes.mnist_vit, the same as `keraszoo train mnist_vit` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("mnist_vit"))
