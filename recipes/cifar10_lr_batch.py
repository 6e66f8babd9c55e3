#!/usr/bin/env python
# The command line of keraszoo.recipes.cifar10_lr_batch, the same as `keraszoo study cifar10_lr_batch` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("cifar10_lr_batch"))
