#!/usr/bin/env python
# The recipe is keraszoo/recipes/mnist_vit_b16.py (importable); this script is its command line.
import sys

from keraszoo.recipes import mnist_vit_b16 as recipe
from keraszoo.training.command_line import cli_main

if __name__ == "__main__":
    sys.exit(cli_main(recipe.main, recipe.MnistViTB16Config, recipe.__doc__))
