#!/usr/bin/env python
# The study is keraszoo/recipes/cifar10_sweeps.py (importable); this script is its command line.
import sys

from keraszoo.recipes import cifar10_sweeps

if __name__ == "__main__":
    sys.exit(cifar10_sweeps.main())
