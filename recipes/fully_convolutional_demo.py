#!/usr/bin/env python
# The command line of keraszoo.recipes.fully_convolutional_demo, the same as `keraszoo tool fully_convolutional_demo` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("fully_convolutional_demo"))
