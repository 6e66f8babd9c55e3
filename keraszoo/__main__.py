import sys

from keraszoo.cli import main

sys.exit(main())
