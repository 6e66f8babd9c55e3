#!/usr/bin/env python
# The recipe is keraszoo/recipes/mnist_dinov2.py (importable); this script is its command line.
import sys

from keraszoo.config import parse_config
from keraszoo.recipes import mnist_dinov2 as recipe
from keraszoo.training.command_line import guarded

if __name__ == "__main__":
    config = parse_config(recipe.DinoTransferConfig, description=recipe.__doc__)
    sys.exit(guarded(lambda: recipe.main(config)))
