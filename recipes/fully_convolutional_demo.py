#!/usr/bin/env python
# The tool is keraszoo/recipes/fully_convolutional_demo.py (importable); this script is its command line.
import sys

from keraszoo.recipes.fully_convolutional_demo import main, parse_args

if __name__ == "__main__":
    args = parse_args()
    try:
        main(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
