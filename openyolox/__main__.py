import sys

from openyolox.cli import main

sys.exit(main())
