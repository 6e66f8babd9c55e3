#!/usr/bin/env python
# The recipe is keraszoo/recipes/cifar10_cnn.py (importable); this script is its command line.
import sys

from keraszoo.recipes import cifar10_cnn as recipe
from keraszoo.training.command_line import cli_main

if __name__ == "__main__":
    sys.exit(cli_main(recipe.main, recipe.Cifar10CNNConfig, recipe.__doc__))
