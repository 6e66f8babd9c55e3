#!/usr/bin/env python
# The tool is keraszoo/recipes/vit_attention_maps.py (importable); this script is its command line.
import sys

from keraszoo.recipes.vit_attention_maps import main, parse_args

if __name__ == "__main__":
    try:
        sys.exit(main(parse_args()))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
