#!/usr/bin/env python
# The command line of keraszoo.recipes.cifar10_airbench, the same as `keraszoo train cifar10_airbench` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("cifar10_airbench"))
