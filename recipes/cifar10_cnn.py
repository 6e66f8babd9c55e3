#!/usr/bin/env python
# The command line of keraszoo.recipes.cifar10_cnn, the same as `keraszoo train cifar10_cnn` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("cifar10_cnn"))
