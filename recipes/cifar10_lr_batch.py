#!/usr/bin/env python
# The study is keraszoo/recipes/cifar10_lr_batch.py (importable); this script is its command line.
import sys

from keraszoo.recipes import cifar10_lr_batch

if __name__ == "__main__":
    sys.exit(cifar10_lr_batch.main())
