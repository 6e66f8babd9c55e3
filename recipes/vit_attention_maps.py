#!/usr/bin/env python
# The command line of keraszoo.recipes.vit_attention_maps, the same as `keraszoo tool vit_attention_maps` (keraszoo/recipes/registry.py).
import sys

from keraszoo.recipes.registry import run

if __name__ == "__main__":
    sys.exit(run("vit_attention_maps"))
