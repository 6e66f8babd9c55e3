#!/usr/bin/env python
# The study is keraszoo/recipes/cifar10_ladder.py (importable); this script is its command line.
import sys

from keraszoo.recipes import cifar10_ladder

if __name__ == "__main__":
    sys.exit(cifar10_ladder.main())
