#!/usr/bin/env python
# The study is keraszoo/recipes/mnist_dinov2_study.py (importable); this script is its command line.
import sys

from keraszoo.recipes import mnist_dinov2_study

if __name__ == "__main__":
    sys.exit(mnist_dinov2_study.main())
