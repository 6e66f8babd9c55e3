#!/usr/bin/env python
# The command line of keraszoo.recipes.cifar10_sweeps, the same as `keraszoo study cifar10_sweeps` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("cifar10_sweeps"))
