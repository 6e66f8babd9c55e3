#!/usr/bin/env python
# The command line of keraszoo.recipes.mlp_study, the same as `keraszoo study mlp_study` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("mlp_study"))
