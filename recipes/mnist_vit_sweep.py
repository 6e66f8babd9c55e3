#!/usr/bin/env python
# The study is keraszoo/recipes/mnist_vit_sweep.py (importable); this script is its command line.
import sys

from keraszoo.recipes import mnist_vit_sweep

if __name__ == "__main__":
    sys.exit(mnist_vit_sweep.main())
