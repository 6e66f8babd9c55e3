#!/usr/bin/env python
# The recipe is keraszoo/recipes/cifar10_speedrun.py (importable); this script is its command line.
import sys

from keraszoo.recipes import cifar10_speedrun as recipe
from keraszoo.training.command_line import cli_main

if __name__ == "__main__":
    sys.exit(cli_main(recipe.main, recipe.SpeedrunConfig, recipe.__doc__))
