#!/usr/bin/env python
# The command line of keraszoo.recipes.mlp, the same as `keraszoo train mlp` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("mlp"))
