#!/usr/bin/env python
# The study is keraszoo/recipes/mlp_study.py (importable); this script is its command line.
import sys

from keraszoo.recipes import mlp_study

if __name__ == "__main__":
    sys.exit(mlp_study.main())
