#!/usr/bin/env python
# The recipe is keraszoo/recipes/mnist_vit.py (importable); this script is its command line.
import sys

from keraszoo.recipes import mnist_vit as recipe
from keraszoo.training.command_line import cli_main

if __name__ == "__main__":
    sys.exit(cli_main(recipe.main, recipe.MnistViTConfig, recipe.__doc__))
